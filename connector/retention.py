"""Retention: after N days (30 by default) payloads go, run metadata stays.

Received payloads and step inputs/outputs can hold personal data; what a run did, when and
how it ended (status, timings, business keys, errors) stays for reports and audits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.models import Event, Run, RunStatus, RunStep
from database import utcnow

DEFAULT_DAYS = 30
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.DEAD)
PRUNED = {"_pruned": True}


def prune(s: Session, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict[str, int]:
    """Drop payloads of runs finished more than `days` ago (and of their events, once no
    unfinished run needs them); returns how many rows were pruned."""
    if days < 1:
        raise ValueError("keep payloads at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    old_runs = select(Run.id).where(Run.status.in_(FINISHED), Run.finished_at < cutoff)
    steps = s.execute(
        update(RunStep)
        .where(RunStep.run_id.in_(old_runs), RunStep.input != PRUNED)
        .values(input=PRUNED, output=PRUNED, resume_sealed=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    overrides = s.execute(
        update(Run)
        .where(Run.id.in_(old_runs), Run.trigger_override.is_not(None))
        .values(trigger_override=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    live = select(Run.event_id).where(Run.status.not_in(FINISHED))
    events = s.execute(
        update(Event)
        .where(Event.received_at < cutoff, Event.pruned_at.is_(None), Event.id.not_in(live))
        .values(payload=PRUNED, pruned_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return {"steps": steps, "events": events, "replay_payloads": overrides}
