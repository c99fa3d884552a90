"""Dry runs: a flow (or its first steps) on sample data, with every check and no effects.

Steps whose effects stay in our database are performed for real inside one transaction that
is rolled back at the end, so later steps see realistic outputs (an invoice id, totals).
Steps that reach the outside world (mail, HTTP) are not performed: their output schema's
example stands in for their output.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connector import limits, mapping, schemas, steps
from connector.errors import ValidationError
from connector.flows import CompiledStep, compile_flow
from connector.redaction import holding, redact
from connector.registry import Registry
from connector.runner import Tools
from connector.spec import Effects, Entity


@dataclass
class StepResult:
    id: str
    action: str
    status: str  # "succeeded", "failed", "stopped" (filter) or "skipped" (not performed)
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    note: str | None = None


@dataclass
class DryRun:
    status: str  # "succeeded", "failed" or "stopped"
    steps: list[StepResult] = field(default_factory=list)


def dry_run(
    sessions: sessionmaker[Session],
    registry: Registry,
    document: dict[str, Any],
    trigger_item: dict[str, Any] | None = None,
    tools: Tools | None = None,
    until: str | None = None,
) -> DryRun:
    """Run the flow on `trigger_item` (the trigger's example by default), up to step `until`,
    and roll every effect back."""
    flow = compile_flow(document, registry)  # a dry run needs a flow that compiles
    if trigger_item is None:
        trigger_item = schemas.example(flow.trigger.output_schema)
    errors = schemas.validate(flow.trigger.output_schema, trigger_item)
    if errors:
        raise ValidationError.from_field_errors("the sample is not a valid trigger item", errors)
    tools = tools or Tools()
    entity = flow.trigger.entity(trigger_item)
    result = DryRun("succeeded")
    data: dict[str, Any] = {"trigger": copy.deepcopy(trigger_item), "steps": {}}
    # One deadline for every step's mapping, as a check has: a dry run answers a web request.
    deadline = limits.Deadline.after(limits.CHECK_SECONDS)
    with sessions() as s:
        s.begin()
        try:
            for step in flow.steps:
                outcome = _step(s, step, data, flow.lookups, tools, entity, deadline)
                result.steps.append(outcome)
                if outcome.status in ("failed", "stopped"):
                    result.status = outcome.status
                    break
                data["steps"][step.id] = outcome.output
                if step.id == until:
                    break
        finally:
            s.rollback()
    return result


def _step(
    s: Session,
    step: CompiledStep,
    data: dict[str, Any],
    lookups: dict[str, Any],
    tools: Tools,
    entity: Entity | None,
    deadline: limits.Deadline,
) -> StepResult:
    """One step through the runner's own executor (steps.*): the same checks, the same
    failures, the same words; only what reaches the outside is left out."""
    if step.is_filter:
        try:
            value = steps.check_filter(step, data, lookups, deadline)
        except Exception as exc:
            return StepResult(step.id, "filter", "failed", error=_error(exc, step))
        passed = mapping.truthy(value)
        return StepResult(
            step.id,
            "filter",
            "succeeded" if passed else "stopped",
            {"condition": value},
            {"passed": passed},
            note=None if passed else f"stopped: {step.explain}",
        )
    action = step.action
    assert action is not None
    inputs: Any = None
    held: set[str] = set()  # what its connections hand out: masked in what is shown
    try:
        inputs = steps.map_input(step, data, lookups, deadline)
        shown = redact(inputs, action.input_schema)
        if _skipped(action.effects, tools):
            return StepResult(
                step.id,
                action.key,
                "skipped",
                shown,
                schemas.example(action.output_schema),
                note="not performed in a dry run: it reaches the outside world; "
                "its example output stands in",
            )
        ctx = tools.context(s, step, f"dry-run:{step.id}", entity, "puente.dry_run")
        with s.begin_nested(), holding(held):
            output = steps.perform(step, ctx, inputs)
        return StepResult(
            step.id,
            action.key,
            "succeeded",
            redact(inputs, action.input_schema, held),
            redact(output, action.output_schema, held),
        )
    except Exception as exc:
        return StepResult(
            step.id,
            action.key,
            "failed",
            redact(inputs, action.input_schema, held),
            error=redact(_error(exc, step), None, held),
        )


def _skipped(effects: Effects, tools: Tools) -> bool:
    """Writes to the outside are never performed; reads only with outbound HTTP at hand."""
    if effects is Effects.EXTERNAL_WRITE:
        return True
    return effects is Effects.READ and tools.http is None


def _error(exc: Exception, step: CompiledStep) -> dict[str, Any]:
    return steps.as_error(exc, step, "dry run").as_dict()
