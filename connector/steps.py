"""One step executor for real runs, dry runs and previews: map → validate input → perform →
validate output. Whatever calls it, a bad mapping fails at the same step with the same words.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from connector import limits, mapping, schemas
from connector.errors import PuenteError, TransientError, ValidationError
from connector.flows import CompiledStep
from connector.spec import ActionContext, ActionSpec
from database import is_transient

log = logging.getLogger(__name__)


def check_filter(
    step: CompiledStep,
    data: dict[str, Any],
    lookups: dict[str, Any],
    deadline: limits.Deadline | None = None,
) -> Any:
    """The value of a filter step's condition (mapping.truthy says whether the run goes on)."""
    return mapping.evaluate(step.condition, data, lookups, deadline=deadline)


def map_input(
    step: CompiledStep,
    data: dict[str, Any],
    lookups: dict[str, Any],
    deadline: limits.Deadline | None = None,
) -> Any:
    """The step's input mapped from the trigger and earlier steps, checked against the
    action's input schema (every error with its path, in plain words); `deadline` is the
    mapping's (by default its own, connector.limits.SECONDS)."""
    action = _action(step)
    inputs = mapping.evaluate(step.input, data, lookups, deadline=deadline)
    errors = schemas.validate(action.input_schema, inputs)
    if errors:
        raise ValidationError.from_field_errors(f"step '{step.id}': the input is not valid", errors)
    return inputs


def perform(step: CompiledStep, ctx: ActionContext, inputs: Any) -> Any:
    """Perform the action and check its output against its schema."""
    action = _action(step)
    output = action.perform(ctx, inputs)
    errors = schemas.validate(action.output_schema, output)
    if errors:
        raise PuenteError.from_field_errors(
            f"action {action.key} returned output that breaks its schema", errors
        )
    return output


def as_error(exc: Exception, step: CompiledStep | None, run: str) -> PuenteError:
    """What a step's exception means: ours say it; a lost database connection is transient;
    anything else is a bug to look at, logged with its traceback."""
    if isinstance(exc, PuenteError):
        return exc
    if isinstance(exc, DBAPIError):
        cls = TransientError if is_transient(exc) else PuenteError
        return cls(f"database error: {exc.orig}")
    where = step.action.key if step and step.action else f"step '{step.id if step else '?'}'"
    log.exception("%s crashed in %s", run, where)
    return PuenteError(f"unexpected error in {where}: {exc!r}")


def _action(step: CompiledStep) -> ActionSpec:
    assert step.action is not None, f"step {step.id} is a filter"
    return step.action
