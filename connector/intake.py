"""Persist, then acknowledge: one transaction stores the events and one queued run per flow.

Whatever the trigger's kind, items arrive on a `Route`: where they came from (the event's
source, unique with the trigger and the item's key: a redelivery is a no-op) and which
enabled flows they feed. What an item is about (its entity, for per-deal serialization) and
what it is found by (business keys) is the trigger's to say, never the intake's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.exceptions import RedisError
from sqlalchemy import Select, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector import schemas
from connector.errors import FieldError
from connector.jobs import enqueue_runs
from connector.models import Event, EventStatus, Flow, Run, RunKey, RunStatus
from connector.runner import QUEUED_GRACE, business_keys
from connector.runtime import Runtime
from connector.spec import ParsedItem, TriggerSpec
from database import insert_ignore, utcnow

log = logging.getLogger(__name__)

MAX_DEDUP_KEY = 200  # Event.dedup_key's length
MAX_ENTITY_KEY = 150  # Run.entity_key's length

# Built once: the intake runs them for every delivery.
_flows_t, _events_t, _runs_t, _keys_t = (
    cast(Table, m.__table__) for m in (Flow, Event, Run, RunKey)
)
_LIVE = (_flows_t.c.enabled.is_(True), _flows_t.c.current_version_id.is_not(None))
_COLUMNS = (_flows_t.c.id, _flows_t.c.current_version_id)
_FLOWS: dict[str, Select[Any]] = {
    # a standalone subscription's flows
    "subscription": select(*_COLUMNS).where(
        _flows_t.c.subscription_id == bindparam("b_match"), *_LIVE
    ),
    # the flows on one trigger of a connection (a CRM's one address for all its events)
    "connection": select(*_COLUMNS).where(
        _flows_t.c.connection == bindparam("b_match"),
        _flows_t.c.trigger_key == bindparam("b_trigger"),
        *_LIVE,
    ),
    # every flow on an internal event's trigger
    "trigger": select(*_COLUMNS).where(
        _flows_t.c.trigger_key == bindparam("b_trigger"),
        _flows_t.c.subscription_id.is_(None),
        *_LIVE,
    ),
    # one flow (a poll keeps a cursor per flow)
    "flow": select(*_COLUMNS).where(_flows_t.c.id == bindparam("b_match"), *_LIVE),
}
_ADD_EVENTS = insert(_events_t).returning(_events_t.c.id, sort_by_parameter_order=True)
_ADD_RUNS = insert(_runs_t).returning(_runs_t.c.id, sort_by_parameter_order=True)


def connection_scope(name: str) -> str:
    """A connection's deals are its own, by its name: flows name it, and one deleted and made
    again for the same CRM account still knows the deals invoiced through it."""
    return f"connection:{name}"


@dataclass(frozen=True)
class Route:
    """Where items came from, and which flows they feed."""

    source: str  # Event.source
    flows: str  # a key of _FLOWS
    match: Any = None
    subscription_id: int | None = None
    # The integration the items arrived on (Event.scope): what their entities are unique
    # within, whatever source their payload names. None for our own outbox events.
    scope: str | None = None

    @classmethod
    def subscription(cls, subscription_id: int) -> Route:
        source = f"subscription:{subscription_id}"
        return cls(source, "subscription", subscription_id, subscription_id, source)

    @classmethod
    def connection(cls, connection_id: int, name: str) -> Route:
        return cls(f"connection:{connection_id}", "connection", name, scope=connection_scope(name))

    @classmethod
    def outbox(cls) -> Route:
        return cls("outbox", "trigger")

    @classmethod
    def poll(cls, flow_id: int, connection: str | None = None) -> Route:
        """A flow's poll: its own cursor and events, its deals those of the connection it reads
        (a webhook and a poll of one CRM account know the same deals)."""
        scope = f"poll:{flow_id}" if connection is None else connection_scope(connection)
        return cls(f"poll:{flow_id}", "flow", flow_id, scope=scope)

    @classmethod
    def push(cls) -> Route:
        """Items an API client posts to a push trigger: every flow on it."""
        return cls("api", "trigger", scope="api")

    @classmethod
    def manual(cls, flow_id: int) -> Route:
        """A trigger item given by hand to one flow (POST /api/v1/flows/<id>/trigger)."""
        return cls(f"manual:{flow_id}", "flow", flow_id, scope="manual")


@dataclass(frozen=True)
class Accepted:
    event_ids: list[int]
    run_ids: list[int]
    duplicate: bool  # True when this delivery was received before: nothing new was created
    errors: list[dict[str, Any]] | None = None  # set when the delivery was rejected as invalid
    dedup_keys: tuple[str, ...] = ()  # of the events found, when answering a duplicate


@dataclass(frozen=True)
class Stored:
    """What `store` wrote: the caller commits, then enqueues the runs."""

    event_ids: list[int]
    run_ids: list[int]
    entities: dict[int, str | None]  # run id → entity key


def accept(
    rt: Runtime,
    route: Route,
    trigger: TriggerSpec,
    items: Sequence[ParsedItem],
    bulk: bool = False,
) -> Accepted:
    """Store the items and their runs, commit, then enqueue the run ids (on the bulk queue
    with `bulk`: connector.pace).

    Items are deduplicated one by one: in a batch that repeats some (a CRM resending events
    with new ones), the new ones are stored and the others answer what they started."""
    before: Accepted | None = None
    keys = [item.dedup_key for item in items]
    for _ in range(3):  # a concurrent delivery may store some of the same items meanwhile
        try:
            with rt.sessions.begin() as s:
                stored = store(s, route, trigger, items, utcnow())
            break
        except IntegrityError:
            before = _previous(rt, route, trigger.key, keys)
            if before is None:
                raise
            known = set(before.dedup_keys)
            items = [item for item in items if dedup_key(item.dedup_key) not in known]
            if not items:
                return before
    else:
        raise RuntimeError("the delivery's items kept colliding with concurrent deliveries")
    enqueue(rt, stored, bulk)
    if before is None:
        return Accepted(stored.event_ids, stored.run_ids, False)
    return Accepted(before.event_ids + stored.event_ids, before.run_ids + stored.run_ids, False)


def store(
    s: Session,
    route: Route,
    trigger: TriggerSpec,
    items: Sequence[ParsedItem],
    now: datetime,
    flows: Sequence[tuple[int, int]] | None = None,
) -> Stored:
    """Write the items as events and one queued run per flow the route feeds, in `s`.

    A repeated item breaks the events' unique key (IntegrityError): nothing is written."""
    if flows is None:
        flows = live_flows(s, route, trigger.key)
    event_ids = list(
        s.scalars(
            _ADD_EVENTS,
            [
                {
                    "source": route.source,
                    "scope": route.scope,
                    "subscription_id": route.subscription_id,
                    "trigger_key": trigger.key,
                    "dedup_key": dedup_key(item.dedup_key),
                    "payload": item.data,
                    "received_at": now,
                }
                for item in items
            ],
        )
    )
    runs, keys = [], []
    for event_id, item in zip(event_ids, items, strict=True):
        entity = trigger.entity(item.data)
        if entity is not None:
            entity = entity.arrived_on(route.scope)
        item_keys = business_keys(trigger.business_keys, item.data)
        for flow_id, version_id in flows:
            runs.append(
                {
                    "event_id": event_id,
                    "flow_id": flow_id,
                    "flow_version_id": version_id,
                    "status": RunStatus.QUEUED,
                    "created_at": now,
                    "deadline_at": now + QUEUED_GRACE,
                    "entity_key": None if entity is None else str(entity)[:MAX_ENTITY_KEY],
                    "enqueued_at": now,
                }
            )
            keys.append(item_keys)
    run_ids = list(s.scalars(_ADD_RUNS, runs)) if runs else []
    rows = [
        {"run_id": run_id, "name": name, "value": value}
        for run_id, item_keys in zip(run_ids, keys, strict=True)
        for name, value in item_keys.items()
    ]
    if rows:
        insert_ignore(s, _keys_t, rows, ["run_id", "name", "value"])
    entities = {i: run["entity_key"] for i, run in zip(run_ids, runs, strict=True)}
    return Stored(event_ids, run_ids, entities)


def live_flows(s: Session, route: Route, trigger_key: str) -> list[tuple[int, int]]:
    """(flow id, current version id) of the enabled flows the route feeds."""
    rows = s.execute(_FLOWS[route.flows], {"b_match": route.match, "b_trigger": trigger_key})
    return [(flow_id, version_id) for flow_id, version_id in rows]


def enqueue(rt: Runtime, stored: Stored, bulk: bool = False) -> None:
    """Put the committed runs on the queue; with Redis down the sweeper does it later."""
    try:
        enqueue_runs(rt, stored.run_ids, stored.entities, bulk)
    except RedisError:
        log.exception("could not enqueue runs %s; the sweeper will retry", stored.run_ids)


def reject(
    rt: Runtime,
    route: Route,
    trigger_key: str,
    delivery_key: str,
    payload: Any,
    errors: list[FieldError],
) -> Accepted:
    """Keep an invalid delivery (nothing is lost) without starting any run."""
    try:
        with rt.sessions.begin() as s:
            event = Event(
                source=route.source,
                subscription_id=route.subscription_id,
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
        previous = _previous(rt, route, trigger_key, [delivery_key])
        if previous is None:
            raise
        return previous


def _previous(rt: Runtime, route: Route, trigger_key: str, keys: list[str]) -> Accepted | None:
    with rt.sessions() as s:
        events = list(
            s.scalars(
                select(Event)
                .where(
                    Event.source == route.source,
                    Event.trigger_key == trigger_key,
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
    return Accepted(event_ids, run_ids, True, errors, tuple(e.dedup_key for e in events))


def dedup_key(key: str) -> str:
    """Fit any delivery id in the column: the spec sets no length, so long ones are hashed."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def invalid(trigger: TriggerSpec, items: Sequence[ParsedItem]) -> list[FieldError]:
    """Every item's schema errors, each path prefixed with the item's index when many."""
    errors = []
    for index, item in enumerate(items):
        for err in schemas.validate(trigger.output_schema, item.data):
            path = f"[{index}].{err.path}" if len(items) > 1 else err.path
            errors.append(type(err)(path, err.message, err.code, err.params))
    return errors
