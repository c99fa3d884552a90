"""Persist, then acknowledge: one transaction stores the events and one queued run per flow."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, cast

from redis.exceptions import RedisError
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from connector.errors import FieldError
from connector.jobs import enqueue_runs
from connector.models import Event, EventStatus, Flow, Run, RunStatus
from connector.runner import QUEUED_GRACE
from connector.runtime import Runtime
from connector.spec import ParsedItem
from database import utcnow

log = logging.getLogger(__name__)

MAX_DEDUP_KEY = 200  # Event.dedup_key's length


# Built once: the intake runs them for every delivery.
_flows_t, _events_t, _runs_t = (cast(Table, m.__table__) for m in (Flow, Event, Run))
_ENABLED_FLOWS = select(_flows_t.c.id, _flows_t.c.current_version_id).where(
    _flows_t.c.subscription_id == bindparam("b_subscription"),
    _flows_t.c.enabled.is_(True),
    _flows_t.c.current_version_id.is_not(None),
)
_ADD_EVENTS = insert(_events_t).returning(_events_t.c.id, sort_by_parameter_order=True)
_ADD_RUNS = insert(_runs_t).returning(_runs_t.c.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class Accepted:
    event_ids: list[int]
    run_ids: list[int]
    duplicate: bool  # True when this delivery was received before: nothing new was created
    errors: list[dict[str, Any]] | None = None  # set when the delivery was rejected as invalid


def accept(
    rt: Runtime, subscription_id: int, trigger_key: str, items: list[ParsedItem]
) -> Accepted:
    """Store the items and their runs, commit, then enqueue the run ids."""
    now = utcnow()
    try:
        with rt.sessions.begin() as s:
            flows = s.execute(_ENABLED_FLOWS, {"b_subscription": subscription_id}).all()
            event_ids = list(
                s.scalars(
                    _ADD_EVENTS,
                    [
                        {
                            "subscription_id": subscription_id,
                            "trigger_key": trigger_key,
                            "dedup_key": dedup_key(item.dedup_key),
                            "payload": item.data,
                            "received_at": now,
                        }
                        for item in items
                    ],
                )
            )
            runs = [
                {
                    "event_id": event_id,
                    "flow_id": flow_id,
                    "flow_version_id": version_id,
                    "status": RunStatus.QUEUED,
                    "created_at": now,
                    "deadline_at": now + QUEUED_GRACE,
                    "deal_ref": _deal_ref(item.data),
                    "entity_key": entity_key(item.data),
                    "enqueued_at": now,
                }
                for event_id, item in zip(event_ids, items, strict=True)
                for flow_id, version_id in flows
            ]
            run_ids = list(s.scalars(_ADD_RUNS, runs)) if runs else []
            accepted = Accepted(event_ids, run_ids, False)
            entities = {i: run["entity_key"] for i, run in zip(run_ids, runs, strict=True)}
    except IntegrityError:
        previous = _previous(rt, subscription_id, [item.dedup_key for item in items])
        if previous is None:
            raise
        return previous
    try:
        enqueue_runs(rt, accepted.run_ids, entities)
    except RedisError:
        # The runs are committed; the sweeper enqueues them once Redis is back.
        log.exception("could not enqueue runs %s; the sweeper will retry", accepted.run_ids)
    return accepted


def reject(
    rt: Runtime,
    subscription_id: int,
    trigger_key: str,
    delivery_key: str,
    payload: Any,
    errors: list[FieldError],
) -> Accepted:
    """Keep an invalid delivery (nothing is lost) without starting any run."""
    try:
        with rt.sessions.begin() as s:
            event = Event(
                subscription_id=subscription_id,
                trigger_key=trigger_key,
                dedup_key=dedup_key(delivery_key),
                payload=payload,
                status=EventStatus.REJECTED,
                errors=[e.as_dict() for e in errors],
            )
            s.add(event)
            s.flush()
            return Accepted([event.id], [], False, event.errors)
    except IntegrityError:
        previous = _previous(rt, subscription_id, [delivery_key])
        if previous is None:
            raise
        return previous


def _previous(rt: Runtime, subscription_id: int, keys: list[str]) -> Accepted | None:
    with rt.sessions() as s:
        events = list(
            s.scalars(
                select(Event)
                .where(
                    Event.subscription_id == subscription_id,
                    Event.dedup_key.in_([dedup_key(k) for k in keys]),
                )
                .order_by(Event.id)
            )
        )
        if not events:
            return None
        event_ids = [e.id for e in events]
        run_ids = list(
            s.scalars(select(Run.id).where(Run.event_id.in_(event_ids)).order_by(Run.id))
        )
    errors = next((e.errors for e in events if e.status == EventStatus.REJECTED), None)
    return Accepted(event_ids, run_ids, True, errors)


def dedup_key(key: str) -> str:
    """Fit any delivery id in the column: the spec sets no length, so long ones are hashed."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def entity_key(data: dict[str, Any]) -> str | None:
    """What must never be worked on by two runs at once: the CRM deal (source and id)."""
    deal = data.get("deal_id")
    return None if deal is None else f"{data.get('source') or 'webhook'}:{deal}"[:150]


def _deal_ref(data: dict[str, Any]) -> str | None:
    value = data.get("deal_id")
    return str(value)[:100] if value is not None else None
