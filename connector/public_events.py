"""Public events: what happened in Puente, as Zapier, Make and API clients see it.

Their types are declared as data: an event trigger with a `public_event` (`invoice.paid`…)
publishes its items, valid against its output schema, as events of that type; the engine adds
`run.failed`. Each event is written once per origin, in the transaction that makes it, with a
pending delivery for each active REST hook subscription of its type (connector.rest_hooks
sends them). No RQ or Flask here: the runner publishes its failures through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connector.models import (
    Flow,
    HookDelivery,
    HookDeliveryStatus,
    HookSubscription,
    PublicEvent,
    Run,
    RunKey,
)
from connector.registry import Registry
from database import insert_new, utcnow

RUN_FAILED = "run.failed"  # the engine's own event; the others come from domain triggers
RUN_FAILED_SCHEMA = "events/run_failed.json"


def event_types(registry: Registry) -> dict[str, str]:
    """Every public event type and the JSON Schema of its `data`."""
    types = {t.public_event: t.output_schema for t in registry.triggers.values() if t.public_event}
    return {**types, RUN_FAILED: RUN_FAILED_SCHEMA}


def public_id(event_id: int) -> str:
    return f"evt_{event_id}"


def message(event: PublicEvent, public_url: str) -> dict[str, Any]:
    """What a subscriber receives and GET /api/v1/events lists. Links are made now, from the
    installation's public URL (it may have changed since the event)."""
    data = event.data
    if event.type == RUN_FAILED:
        data = {**data, "url": f"{public_url.rstrip('/')}/ui/runs/{data['run_id']}"}
    return {
        "id": public_id(event.id),
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "data": data,
    }


def publish(
    s: Session,
    type_: str,
    subject: str,
    origin: str,
    data: dict[str, Any],
    now: datetime | None = None,
) -> int | None:
    """Write the event and a pending delivery per active subscription of its type, in `s`'s
    transaction; None when this origin published it already."""
    now = now or utcnow()
    event = insert_new(
        s,
        PublicEvent,
        {"type": type_, "subject": subject, "origin": origin, "data": data, "created_at": now},
        unique=["origin"],
    )
    if event is None:
        return None
    subscribers = s.scalars(
        select(HookSubscription.id).where(
            HookSubscription.event == type_, HookSubscription.active.is_(True)
        )
    ).all()
    if subscribers:
        s.execute(
            insert(HookDelivery),
            [
                {
                    "subscription_id": sub_id,
                    "event_id": event.id,
                    "subject": subject,
                    "status": HookDeliveryStatus.PENDING,
                    "attempts": 0,
                    "claims": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for sub_id in subscribers
            ],
        )
    return event.id


def run_failures(s: Session, run_ids: Sequence[int], now: datetime | None = None) -> None:
    """Publish `run.failed` for runs that just ended failed or dead (in their transaction)."""
    if not run_ids:
        return
    rows = s.execute(
        select(Run.id, Run.flow_id, Run.status, Run.attempts, Run.replays, Run.error)
        .add_columns(Flow.name, Flow.trigger_key)
        .join(Flow, Flow.id == Run.flow_id)
        .where(Run.id.in_(run_ids))
    ).all()
    keys: dict[int, dict[str, str]] = {}
    for run_id, name, value in s.execute(
        select(RunKey.run_id, RunKey.name, RunKey.value)
        .where(RunKey.run_id.in_(run_ids))
        .order_by(RunKey.id)
    ):
        keys.setdefault(run_id, {})[name] = value  # the last value of each name
    now = now or utcnow()
    for row in rows:
        error = dict(row.error or {})
        data = {
            "run_id": row.id,
            "flow_id": row.flow_id,
            "flow_name": row.name,
            "trigger": row.trigger_key,
            "status": row.status,
            "attempts": max(1, row.attempts),
            "error": {
                "message": str(error.get("message") or ""),
                "class": error.get("class"),
                "step": error.get("step"),
                "errors": error.get("errors") or [],
            },
            "keys": keys.get(row.id, {}),
            "failed_at": now.isoformat(),
        }
        origin = f"run:{row.id}:{row.attempts}:{row.replays}"
        publish(s, RUN_FAILED, f"run:{row.id}", origin, data, now)
