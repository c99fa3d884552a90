"""Dry runs: a flow (or its first steps) on sample data, with every check and no effects.

Steps whose effects stay in our database are performed for real inside one transaction that
is rolled back at the end, so later steps see realistic outputs (an invoice id, totals).
Steps that reach the outside world (mail, HTTP) are not performed: their output schema's
example stands in for their output.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connector import mapping, schemas
from connector.errors import ConfigurationError, PuenteError, ValidationError
from connector.flows import compile_flow
from connector.redaction import redact
from connector.registry import Registry
from connector.runner import Services, StepContext
from invoicing.service import Invoicing


@dataclass
class StepResult:
    id: str
    action: str
    status: str  # "succeeded", "failed", "stopped" (filter) or "skipped" (external effects)
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
    services: Services | None = None,
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
    services = services or Services()
    result = DryRun("succeeded")
    data: dict[str, Any] = {"trigger": copy.deepcopy(trigger_item), "steps": {}}
    with sessions() as s:
        s.begin()
        try:
            for step in flow.steps:
                outcome = _step(s, step, data, flow.lookups, services)
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
    s: Session, step: Any, data: dict[str, Any], lookups: dict[str, Any], services: Services
) -> StepResult:
    if step.is_filter:
        try:
            value = mapping.evaluate(step.condition, data, lookups)
        except ConfigurationError as exc:
            return StepResult(step.id, "filter", "failed", error=exc.as_dict())
        passed = value not in (False, None, "", [], {})
        return StepResult(
            step.id,
            "filter",
            "succeeded" if passed else "stopped",
            {"condition": value},
            {"passed": passed},
            note=None if passed else f"stopped: {step.explain}",
        )
    action = step.action
    inputs: Any = None
    try:
        inputs = mapping.evaluate(step.input, data, lookups)
        errors = schemas.validate(action.input_schema, inputs)
        if errors:
            raise ValidationError.from_field_errors(
                f"step '{step.id}': the input is not valid", errors
            )
        shown = redact(inputs, action.input_schema)
        if action.effects != "database":
            example = schemas.example(action.output_schema)
            return StepResult(
                step.id,
                action.key,
                "skipped",
                shown,
                example,
                note="not performed in a dry run: it reaches the outside world; "
                "its example output stands in",
            )
        ctx = StepContext(
            f"dry-run:{step.id}",
            Invoicing(s),
            logging.getLogger(f"puente.dry_run.{action.key}"),
            services.public_url,
            services.settings,
            services.signing,
        )
        with s.begin_nested():
            output = action.perform(ctx, inputs)
        return StepResult(
            step.id, action.key, "succeeded", shown, redact(output, action.output_schema)
        )
    except PuenteError as exc:
        return StepResult(
            step.id, action.key, "failed", redact(inputs, action.input_schema), error=exc.as_dict()
        )
