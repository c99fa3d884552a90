"""Poll triggers: read a source with a cursor kept in the database, start the flow's runs.

Each enabled flow on a poll trigger keeps its own cursor (TriggerState "poll:flow:<id>").
The first poll records where the source stands and fires nothing. Later polls store the new
items as events (unique per flow and item: an item read twice, say after a crash between
the read and the commit, starts nothing the second time) together with the new cursor, in
one transaction; then the runs are enqueued.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from redis.exceptions import LockError
from sqlalchemy import String, cast, literal, select
from sqlalchemy.orm import Session

from connector import intake, schemas
from connector.errors import PuenteError
from connector.flows import compile_flow
from connector.models import Event, Flow, TriggerState
from connector.runtime import Runtime
from connector.spec import ParsedItem, PollContext, TriggerKind
from database import reading, utcnow

log = logging.getLogger(__name__)

LOCK_PREFIX = "puente:poll:"


def state_name(flow_id: int) -> str:
    return f"poll:flow:{flow_id}"


def due(rt: Runtime) -> list[int]:
    """The enabled flows on a poll trigger whose next poll is due."""
    polled = [t.key for t in rt.registry.triggers.values() if t.kind is TriggerKind.POLL]
    if not polled:
        return []
    now = utcnow()
    with reading(rt.sessions) as s:
        flows = s.execute(
            select(Flow.id, Flow.trigger_key, TriggerState.updated_at)
            .outerjoin(
                TriggerState,
                TriggerState.name == literal("poll:flow:").concat(cast(Flow.id, String)),
            )
            .where(Flow.enabled.is_(True), Flow.trigger_key.in_(polled))
            .order_by(Flow.id)
        ).all()
    every = {key: rt.registry.trigger(key).poll_every_seconds for key in polled}
    return [
        flow_id
        for flow_id, key, polled_at in flows
        if polled_at is None or polled_at + timedelta(seconds=every[key]) <= now
    ]


def poll_flow(rt: Runtime, flow_id: int) -> list[int]:
    """Poll one flow's source; the ids of the runs it queued. One poller per flow at a time."""
    lock = rt.redis.lock(LOCK_PREFIX + str(flow_id), timeout=600, blocking=False)
    if not lock.acquire():
        return []
    try:
        return _poll(rt, flow_id)
    finally:
        with contextlib.suppress(LockError):
            lock.release()


def _poll(rt: Runtime, flow_id: int) -> list[int]:
    with reading(rt.sessions) as s:
        flow = s.get(Flow, flow_id)
        if flow is None or not flow.enabled or flow.current_version is None:
            return []
        document, version_id = flow.current_version.document, flow.current_version.id
        state = s.scalar(select(TriggerState).where(TriggerState.name == state_name(flow_id)))
        kept = (state.state or {}) if state else {}
        cursor, first = kept.get("cursor"), not kept.get("primed")
    compiled = compile_flow(document, rt.registry)
    trigger = compiled.trigger
    assert trigger.poll is not None, f"{trigger.key} is not a poll trigger"
    ctx = PollContext(
        http=rt.http,
        connection=compiled.connection,
        config=compiled.trigger_config,
        log=logging.getLogger(f"puente.poll.{trigger.key}"),
    )
    try:
        found = trigger.poll(ctx, cursor)
    except PuenteError as exc:
        log.warning("flow %s: the poll of %s failed: %s", flow_id, trigger.key, exc.message)
        with rt.sessions.begin() as s:  # tried: wait for the next turn
            _set_cursor(s, flow_id, cursor, primed=not first, error=str(exc.message))
        return []
    route = intake.Route.poll(flow_id, compiled.connection)
    items = [] if first else _valid(trigger.output_schema, found.items, flow_id)
    with rt.sessions.begin() as s:
        fresh = _unseen(s, route, trigger.key, items)
        stored = (
            intake.store(s, route, trigger, fresh, utcnow(), [(flow_id, version_id)])
            if fresh
            else None
        )
        _set_cursor(s, flow_id, found.cursor, primed=True, error=None)
    if stored is None:
        return []
    intake.enqueue(rt, stored)
    return stored.run_ids


def _valid(schema: str, items: list[ParsedItem], flow_id: int) -> list[ParsedItem]:
    """Items valid against the trigger's schema; the others are logged and left out."""
    valid = []
    for item in items:
        errors = schemas.validate(schema, item.data)
        if errors:
            log.warning("flow %s: polled item %s left out: %s", flow_id, item.dedup_key, errors)
        else:
            valid.append(item)
    return valid


def _unseen(
    s: Session, route: intake.Route, trigger_key: str, items: list[ParsedItem]
) -> list[ParsedItem]:
    if not items:
        return []
    seen = set(
        s.scalars(
            select(Event.dedup_key).where(
                Event.source == route.source,
                Event.trigger_key == trigger_key,
                Event.dedup_key.in_([intake.dedup_key(i.dedup_key) for i in items]),
            )
        )
    )
    return [i for i in items if intake.dedup_key(i.dedup_key) not in seen]


def _set_cursor(
    s: Session, flow_id: int, cursor: object, *, primed: bool, error: str | None
) -> None:
    """Keep the cursor; `primed` once a poll has recorded where the source stands."""
    name = state_name(flow_id)
    state = s.scalar(select(TriggerState).where(TriggerState.name == name).with_for_update())
    value = {"cursor": cursor, "primed": primed, "error": error}
    if state is None:
        s.add(TriggerState(name=name, state=value, updated_at=utcnow()))
    else:
        state.state, state.updated_at = value, utcnow()
