"""What the engine is doing, for the dashboard: runs per hour by status, and the queue."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.models import Run, RunStatus


@dataclass(frozen=True)
class Hour:
    start: datetime  # UTC, on the hour
    counts: dict[str, int]  # status → runs created in that hour

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def runs_per_hour(s: Session, now: datetime, hours: int = 24) -> list[Hour]:
    """Runs created in each of the last `hours` hours (the current one last), by status now."""
    last = now.replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=hours - 1)
    tally: dict[datetime, Counter[str]] = {
        first + timedelta(hours=n): Counter() for n in range(hours)
    }
    for created, status in s.execute(
        select(Run.created_at, Run.status).where(Run.created_at >= first)
    ):
        bucket = tally.get(created.replace(minute=0, second=0, microsecond=0))
        if bucket is not None:
            bucket[status] += 1
    return [Hour(start, dict(counts)) for start, counts in tally.items()]


@dataclass(frozen=True)
class Queue:
    depth: int  # runs waiting for a worker
    oldest: datetime | None  # when the longest-waiting one was queued


def queue(s: Session) -> Queue:
    depth, oldest = s.execute(
        select(func.count(Run.id), func.min(func.coalesce(Run.enqueued_at, Run.created_at))).where(
            Run.status == RunStatus.QUEUED
        )
    ).one()
    return Queue(depth or 0, oldest)
