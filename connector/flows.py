"""Flow documents: validated against schemas/flow.json and compiled when saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector import mapping, schemas
from connector.errors import ConfigurationError, FieldError
from connector.registry import Registry
from connector.spec import ActionSpec, TriggerSpec


@dataclass(frozen=True)
class CompiledStep:
    id: str
    action: ActionSpec
    input: mapping.Compiled


@dataclass(frozen=True)
class CompiledFlow:
    name: str
    trigger: TriggerSpec
    steps: tuple[CompiledStep, ...]


def compile_flow(document: Any, registry: Registry) -> CompiledFlow:
    """Check a flow document and compile its expressions; report every problem at once."""
    errors = schemas.validate("flow.json", document)
    if errors:
        raise ConfigurationError("the flow is not valid: " + "; ".join(map(str, errors)), errors)
    trigger = None
    if document["trigger"]["key"] in registry.triggers:
        trigger = registry.triggers[document["trigger"]["key"]]
    else:
        errors.append(
            FieldError(
                "trigger.key", f"unknown trigger {document['trigger']['key']!r}", "unknown_trigger"
            )
        )
    steps: list[CompiledStep] = []
    seen: set[str] = set()
    for i, step in enumerate(document["steps"]):
        where = f"steps[{i}]"
        if step["id"] in seen:
            errors.append(
                FieldError(f"{where}.id", f"step id {step['id']!r} is used twice", "duplicate_step")
            )
        seen.add(step["id"])
        action = registry.actions.get(step["action"])
        if action is None:
            errors.append(
                FieldError(
                    f"{where}.action", f"unknown action {step['action']!r}", "unknown_action"
                )
            )
        try:
            compiled = mapping.compile_mapping(step["input"], f"{where}.input")
        except ConfigurationError as exc:
            errors.extend(exc.errors)
            continue
        if action is not None:
            steps.append(CompiledStep(step["id"], action, compiled))
    if errors or trigger is None:
        raise ConfigurationError("the flow is not valid: " + "; ".join(map(str, errors)), errors)
    return CompiledFlow(document["name"], trigger, tuple(steps))
