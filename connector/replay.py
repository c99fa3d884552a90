"""Recovery: replay a run (or many, paced), optionally with an edited trigger payload.

A replay re-queues the same run: steps that already succeeded are not performed again, so a
replay after a fix resumes where the run stopped. Each attempt stays in the run's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import schemas
from connector.checks import enableable
from connector.errors import ConfigurationError, ValidationError
from connector.jobs import job_id
from connector.models import Flow, Run, RunStatus
from connector.registry import Registry
from connector.retention import PRUNED
from connector.runner import QUEUED_GRACE
from database import utcnow

REPLAYABLE = frozenset({RunStatus.FAILED, RunStatus.DEAD, RunStatus.STOPPED, RunStatus.SUCCEEDED})


class ReplayError(ConfigurationError):
    """The run cannot be replayed as asked."""


@dataclass(frozen=True)
class Replayed:
    run_id: int
    delay: float  # seconds before it is enqueued (pacing of bulk replays)
    job: str  # its job's id, on the run's row: the sweeper looks for this job


def replay(
    s: Session,
    registry: Registry,
    run_id: int,
    *,
    trigger: dict[str, Any] | None = None,
    version: str = "original",
) -> Run:
    """Queue `run_id` again (the caller commits, then enqueues it)."""
    run = s.scalar(select(Run).where(Run.id == run_id).with_for_update())
    if run is None:
        raise ReplayError(f"run {run_id} does not exist")
    if run.status not in REPLAYABLE:
        raise ReplayError(f"run {run_id} is {run.status}: only finished runs are replayed")
    if run.event.pruned_at is not None or any(st.output == PRUNED for st in run.steps):
        raise ReplayError(
            f"run {run_id}'s data was deleted by the retention policy (PUENTE_RETENTION_DAYS): "
            "it cannot be replayed; send the deal again"
        )
    if version not in ("original", "current"):
        raise ValidationError("version must be 'original' or 'current'")
    if trigger is not None:
        key = run.event.trigger_key
        spec = registry.trigger(key)
        errors = schemas.validate(spec.output_schema, trigger)
        if errors:
            raise ValidationError.from_field_errors("the edited trigger is not valid", errors)
        run.trigger_override = trigger
    if version == "current":
        flow = s.get_one(Flow, run.flow_id)
        if flow.current_version is None:
            raise ReplayError(f"flow {flow.id} has no saved version")
        enableable(flow.current_version.document, registry)
        run.flow_version_id = flow.current_version.id
    now = utcnow()
    run.status = RunStatus.QUEUED
    run.error = None
    run.finished_at = None
    run.job_id = None
    run.attempts = 0  # a fresh retry budget; the history keeps the earlier attempts
    run.replays += 1
    run.enqueued_at = now
    run.deadline_at = now + QUEUED_GRACE
    s.flush()
    return run


def replay_many(
    s: Session, registry: Registry, run_ids: Sequence[int], per_second: float
) -> list[Replayed]:
    """Queue several runs, spaced `per_second` apart so a backlog does not flood anyone."""
    if per_second <= 0:
        raise ValidationError("per_second must be more than 0")
    spaced = []
    for n, run_id in enumerate(run_ids):
        run = replay(s, registry, run_id)
        delay = n / per_second
        run.deadline_at = utcnow() + timedelta(seconds=delay) + QUEUED_GRACE
        run.job_id = job_id(run_id, replay=run.replays) if delay > 0 else None
        spaced.append(Replayed(run_id, delay, run.job_id or job_id(run_id)))
    return spaced
