"""Webhooks registered at the source: a trigger with `subscribe` (Pipedrive, Zoho) gets its
webhook created at the CRM, pointing at its connection's address, while an enabled flow uses
it; removed (`unsubscribe`) when the last one is disabled; renewed (`renew`) before it expires.

What was registered is kept in TriggerState "subscribe:<connection id>:<trigger>" (the
source's webhook id, its expiry), so a restart neither registers twice nor forgets one.
Run by the sweeper process; a source that fails is tried again at the next turn.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.connections import read_secret, webhook_url
from connector.errors import PuenteError
from connector.models import Connection, Flow, TriggerState
from connector.runtime import Runtime
from connector.spec import PollContext, TriggerSpec
from database import utcnow

log = logging.getLogger(__name__)

PREFIX = "subscribe:"
RENEW_BEFORE = timedelta(days=1)  # renew a subscription this long before it expires


def state_name(connection_id: int, trigger_key: str) -> str:
    return f"{PREFIX}{connection_id}:{trigger_key}"


def sync(rt: Runtime, now: datetime | None = None) -> dict[str, list[str]]:
    """Bring the sources' webhooks in line with the enabled flows; what was done, by name."""
    now = now or utcnow()
    lifecycle = {k: t for k, t in rt.registry.triggers.items() if t.subscribe is not None}
    done: dict[str, list[str]] = {"subscribed": [], "unsubscribed": [], "renewed": []}
    if not lifecycle:
        return done
    with rt.sessions() as s:
        wanted = {
            state_name(conn.id, key): (conn, lifecycle[key])
            for conn, key in s.execute(
                select(Connection, Flow.trigger_key)
                .join(Flow, Flow.connection == Connection.name)
                .where(Flow.enabled.is_(True), Flow.trigger_key.in_(lifecycle))
                .distinct()
            ).all()
        }
        kept = {
            st.name: st
            for st in s.scalars(select(TriggerState).where(TriggerState.name.startswith(PREFIX)))
        }
        s.expunge_all()
    for name, (conn, trigger) in wanted.items():
        state = kept.get(name)
        if state is None:
            _try(rt, name, done["subscribed"], lambda c=conn, t=trigger: _subscribe(rt, c, t))
        elif trigger.renew is not None and _expiring(state.state, now):
            _try(
                rt, name, done["renewed"], lambda c=conn, t=trigger, st=state: _renew(rt, c, t, st)
            )
    for name, state in kept.items():
        if name not in wanted:
            _try(rt, name, done["unsubscribed"], lambda st=state: _unsubscribe(rt, st))
    return done


def _try(rt: Runtime, name: str, record: list[str], work: Any) -> None:
    try:
        work()
        record.append(name)
    except PuenteError as exc:
        log.warning("%s: the source refused: %s (tried again later)", name, exc.message)


def _context(rt: Runtime, conn: Connection) -> PollContext:
    secret = read_secret(conn, rt.secrets)
    return PollContext(rt.http, conn.name, dict(conn.settings or {}), log, secret=secret)


def _subscribe(rt: Runtime, conn: Connection, trigger: TriggerSpec) -> None:
    assert trigger.subscribe is not None
    url = webhook_url(conn, rt.settings.public_url)
    if url is None:
        raise PuenteError(f"connection {conn.name!r} has no webhook address")
    state = trigger.subscribe(_context(rt, conn), url)
    with rt.sessions.begin() as s:
        _save(s, state_name(conn.id, trigger.key), {**state, "trigger": trigger.key, "url": url})


def _renew(rt: Runtime, conn: Connection, trigger: TriggerSpec, kept: TriggerState) -> None:
    assert trigger.renew is not None
    state = trigger.renew(_context(rt, conn), dict(kept.state or {}))
    with rt.sessions.begin() as s:
        _save(s, kept.name, {**(kept.state or {}), **state})


def _unsubscribe(rt: Runtime, kept: TriggerState) -> None:
    state = dict(kept.state or {})
    trigger = rt.registry.triggers.get(state.get("trigger", ""))
    connection_id = int(kept.name[len(PREFIX) :].split(":", 1)[0])
    with rt.sessions() as s:
        conn = s.get(Connection, connection_id)
        if conn is not None:
            s.expunge(conn)
    if trigger is not None and trigger.unsubscribe is not None and conn is not None:
        trigger.unsubscribe(_context(rt, conn), state)
    with rt.sessions.begin() as s:
        s.execute(delete(TriggerState).where(TriggerState.name == kept.name))


def _expiring(state: Any, now: datetime) -> bool:
    renew_at = (state or {}).get("renew_at")  # a source whose subscriptions live a day or less
    if renew_at is not None:
        return datetime.fromisoformat(renew_at) <= now
    expires = (state or {}).get("expires_at")
    return expires is not None and datetime.fromisoformat(expires) - RENEW_BEFORE <= now


def _save(s: Session, name: str, state: dict[str, Any]) -> None:
    row = s.scalar(select(TriggerState).where(TriggerState.name == name).with_for_update())
    if row is None:
        s.add(TriggerState(name=name, state=state, updated_at=utcnow()))
    else:
        row.state, row.updated_at = state, utcnow()
