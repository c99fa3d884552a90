"""Internal domain events as triggers: the outbox's events feed the flows on event triggers,
and those a trigger publishes become public events (REST hooks, GET /api/v1/events).

The outbox belongs to a domain (the invoicing core writes it in the same transaction as the
change); the engine reads it through the `OUTBOX` service that domain registers. One
transaction stores the events and runs for a batch of outbox events and marks the batch
handed on, so an outbox event starts each flow exactly once: a worker killed before the
commit leaves the batch to the next dispatch, and runs committed but never enqueued
(Redis flushed, a crash before enqueueing) are found by the sweeper.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from connector import intake, public_events
from connector.runtime import Runtime
from connector.spec import DomainEvent, ServiceKey
from database import utcnow

log = logging.getLogger(__name__)


class OutboxReader(Protocol):
    def unpublished(self, session: Session, limit: int) -> Sequence[DomainEvent]:
        """The oldest events not handed on yet, oldest first, locked for `session`."""

    def mark_published(self, session: Session, ids: list[int]) -> None:
        """Mark events handed on, in `session`'s transaction."""


OUTBOX = ServiceKey[OutboxReader]("outbox")


def dispatch(rt: Runtime, limit: int = 200) -> list[int]:
    """Turn a batch of outbox events into events and runs of the flows on their triggers;
    the ids of the runs queued."""
    if not rt.services.has(OUTBOX):
        return []
    reader = rt.services.get(OUTBOX)
    now = utcnow()
    route = intake.Route.outbox()
    stored: list[intake.Stored] = []
    with rt.sessions.begin() as s:
        events = reader.unpublished(s, limit)
        for event in events:
            for trigger in rt.registry.event_triggers(event.topic):
                assert trigger.from_event is not None
                flows = intake.live_flows(s, route, trigger.key)
                public = trigger.public_event
                items = trigger.from_event(event) if flows or public else []
                if items and flows:
                    stored.append(intake.store(s, route, trigger, items, now, flows))
                if public:  # for REST hook subscribers and the API's event list
                    for item in items:
                        subject = str(trigger.entity(item.data) or f"{event.topic}:{event.id}")
                        origin = f"{item.dedup_key}:{public}"
                        public_events.publish(s, public, subject, origin, item.data, now)
        reader.mark_published(s, [event.id for event in events])
    for batch in stored:
        intake.enqueue(rt, batch)
    run_ids = [run_id for batch in stored for run_id in batch.run_ids]
    if events:
        log.info("outbox: %d event(s) handed on, %d run(s) queued", len(events), len(run_ids))
    return run_ids
