"""Flow documents: validated against schemas/flow.json and compiled when saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector import mapping, schemas
from connector.errors import ConfigurationError, FieldError
from connector.registry import Registry
from connector.spec import ActionSpec, TriggerSpec


@dataclass(frozen=True)
class CompiledStep:
    """An action step (action + input mapping) or a filter step (condition + explanation)."""

    id: str
    action: ActionSpec | None
    input: mapping.Compiled = None
    condition: mapping.Compiled = None
    explain: str = ""
    connection: str | None = None  # the named connection its action uses, when it has one

    @property
    def is_filter(self) -> bool:
        return self.action is None


@dataclass(frozen=True)
class CompiledFlow:
    name: str
    trigger: TriggerSpec
    steps: tuple[CompiledStep, ...]
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The trigger's config (e.g. which stages count as won) and the connection it listens on.
    trigger_config: dict[str, Any] = field(default_factory=dict)
    connection: str | None = None


def trigger_errors(trigger: TriggerSpec, declared: dict[str, Any]) -> list[FieldError]:
    """What is wrong with a flow's trigger settings: its config against the trigger's config
    schema, and the connection a CRM or polled trigger needs."""
    errors = []
    if trigger.config_schema is not None:
        for error in schemas.validate(trigger.config_schema, declared.get("config") or {}):
            path = f"trigger.config.{error.path}" if error.path else "trigger.config"
            errors.append(FieldError(path, error.message, error.code, error.params))
    if trigger.provider is not None and not declared.get("connection"):
        errors.append(FieldError.of("trigger.connection", "required", field="connection"))
    return errors


def compile_flow(document: Any, registry: Registry) -> CompiledFlow:
    """Check a flow document and compile its expressions; report every problem at once."""
    errors = schemas.validate("flow.json", document)
    if errors:
        raise ConfigurationError("the flow is not valid: " + "; ".join(map(str, errors)), errors)
    trigger = registry.triggers.get(document["trigger"]["key"])
    if trigger is None:
        errors.append(
            FieldError.of("trigger.key", "unknown_trigger", trigger=document["trigger"]["key"])
        )
    else:
        errors.extend(trigger_errors(trigger, document["trigger"]))
    steps: list[CompiledStep] = []
    seen: set[str] = set()
    for i, step in enumerate(document["steps"]):
        where = f"steps[{i}]"
        if step["id"] in seen:
            errors.append(FieldError.of(f"{where}.id", "duplicate_step", step=step["id"]))
        seen.add(step["id"])
        try:
            if "filter" in step:
                condition = mapping.compile_mapping(step["filter"], f"{where}.filter")
                steps.append(
                    CompiledStep(step["id"], None, condition=condition, explain=step["explain"])
                )
                continue
            action = registry.actions.get(step["action"])
            if action is None:
                errors.append(
                    FieldError.of(f"{where}.action", "unknown_action", action=step["action"])
                )
            compiled = mapping.compile_mapping(step["input"], f"{where}.input")
        except ConfigurationError as exc:
            errors.extend(exc.errors)
            continue
        if action is not None:
            steps.append(
                CompiledStep(step["id"], action, compiled, connection=step.get("connection"))
            )
    if errors or trigger is None:
        raise ConfigurationError("the flow is not valid: " + "; ".join(map(str, errors)), errors)
    return CompiledFlow(
        document["name"],
        trigger,
        tuple(steps),
        document.get("lookups") or {},
        document["trigger"].get("config") or {},
        document["trigger"].get("connection"),
    )
