"""What leaves Puente: public events, and their delivery to REST hook subscriptions.

A public event (`deal.won`, `invoice.paid`, `run.failed`…) is written once per origin in the
transaction that makes it (the outbox dispatch, a run's failure), with one pending delivery
for each active subscription of its type: nothing is lost if a process dies afterwards.
The sweeper claims due deliveries and puts them on the queue; a worker POSTs each one as
`{"id", "type", "created_at", "data"}` signed with Standard Webhooks headers and the
subscription's secret. Timeouts, 408/425/429 and 5xx are retried with backoff for a day; a
410 ends the subscription (Zapier's and Make's "this hook is gone"); any other answer is final.

One subscription gets the events of one subject (an invoice) in order: a delivery is
claimed only when no earlier delivery of its subject to that subscription is pending.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq import Queue
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from connector import outbound, standard_webhooks
from connector.crypto import SecretBox, new_webhook_secret
from connector.errors import ConfigurationError, TransientError, ValidationError
from connector.models import (
    HookAttempt,
    HookDelivery,
    HookDeliveryStatus,
    HookSubscription,
    PublicEvent,
)
from connector.public_events import event_types, message, public_id
from connector.registry import Registry
from connector.runtime import Runtime
from database import utcnow

log = logging.getLogger(__name__)

RETRY_WINDOW = timedelta(hours=24)
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
# A claimed delivery is the worker's for this long; past it the sweeper may claim it again.
LEASE = timedelta(seconds=120)
TIMEOUT = (5.0, 15.0)
TOTAL_SECONDS = 30.0
MAX_ANSWER_BYTES = 64 * 1024
DELIVER = "connector.rest_hooks.deliver"
PENDING = HookDeliveryStatus.PENDING


def subscribe(
    s: Session,
    box: SecretBox,
    registry: Registry,
    allowed: outbound.Allowed,
    event: str,
    target_url: str,
    api_key_id: int | None,
) -> tuple[HookSubscription, str]:
    """A new subscription and its secret (shown once). The target must be a public https
    (or http) address, checked like any outbound request: ValidationError otherwise."""
    types = event_types(registry)
    if event not in types:
        raise ValidationError(
            f"unknown event type {event!r}; the types are {', '.join(sorted(types))}"
        )
    try:
        outbound.check_target(target_url, allowed)
    except ConfigurationError as exc:  # a private or unusable URL: the caller's data is at fault
        raise ValidationError(str(exc)) from None
    except TransientError as exc:  # a name that does not resolve
        raise ValidationError(f"{exc}; check the target_url") from None
    secret = new_webhook_secret()
    sub = HookSubscription(
        event=event,
        target_url=target_url,
        secret_encrypted=box.encrypt(secret),
        api_key_id=api_key_id,
    )
    s.add(sub)
    s.flush()
    return sub, secret


def end(s: Session, sub: HookSubscription, reason: str, now: datetime | None = None) -> None:
    """Stop the subscription; its pending deliveries are cancelled."""
    now = now or utcnow()
    if sub.active:
        sub.active, sub.ended_at, sub.ended_reason = False, now, reason
    s.execute(
        update(HookDelivery)
        .where(HookDelivery.subscription_id == sub.id, HookDelivery.status == PENDING)
        .values(status=HookDeliveryStatus.CANCELLED, finished_at=now)
    )


def claim_due(rt: Runtime, limit: int = 100, now: datetime | None = None) -> list[int]:
    """Claim the deliveries due now (each the first pending of its subject for its
    subscription) and queue one job each; their ids."""
    now = now or utcnow()
    earlier = aliased(HookDelivery)
    blocked = exists().where(
        and_(
            earlier.subscription_id == HookDelivery.subscription_id,
            earlier.subject == HookDelivery.subject,
            earlier.status == PENDING,
            earlier.id < HookDelivery.id,
        )
    )
    with rt.sessions.begin() as s:
        due = s.execute(
            select(HookDelivery.id, HookDelivery.claims)
            .where(HookDelivery.status == PENDING, HookDelivery.next_attempt_at <= now, ~blocked)
            .order_by(HookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return []
        s.execute(
            update(HookDelivery)
            .where(HookDelivery.id.in_([d.id for d in due]))
            .values(claims=HookDelivery.claims + 1, next_attempt_at=now + LEASE)
        )
    jobs = [
        Queue.prepare_data(
            DELIVER,
            args=(d.id, d.claims + 1),
            job_id=f"hook-{d.id}-{d.claims + 1}",
            timeout=int(TOTAL_SECONDS * 2),
            result_ttl=600,
            failure_ttl=86400,
        )
        for d in due
    ]
    rt.queue.enqueue_many(jobs)
    return [d.id for d in due]


@dataclass(frozen=True)
class _Target:
    url: str
    secret: str
    body: bytes
    msg_id: str


def deliver(delivery_id: int, claim: int, rt: Runtime | None = None) -> str:
    """The job: POST one delivery, record the attempt, decide what comes next."""
    from connector import runtime

    rt = rt or runtime.current()
    target = _load(rt, delivery_id, claim)
    if target is None:
        return "stale"  # delivered, cancelled, or claimed again by a later sweep
    started = utcnow()
    clock = time.monotonic()
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    transient = False
    try:
        answer = outbound.request(
            "POST",
            target.url,
            allowed=outbound.Allowed.parse(rt.settings.http_allow),
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Puente-Webhooks/1",
                **standard_webhooks.headers_for(
                    target.secret, target.msg_id, int(started.timestamp()), target.body
                ),
            },
            content=target.body,
            timeout=TIMEOUT,
            max_bytes=MAX_ANSWER_BYTES,
            total=TOTAL_SECONDS,
        )
        status = answer.status
        if not 200 <= status < 300:
            error = f"the target answered {status}"
    except TransientError as exc:  # timeouts, refused connections, 408/425/429, 5xx
        error, retry_after, status, transient = str(exc), exc.retry_after, exc.status, True
    except (ConfigurationError, ValidationError) as exc:  # now a private address, say
        error = str(exc)
    took = round((time.monotonic() - clock) * 1000)
    return _record(rt, delivery_id, started, status, error, transient, retry_after, took)


def _load(rt: Runtime, delivery_id: int, claim: int) -> _Target | None:
    with rt.sessions() as s:
        row = s.execute(
            select(HookDelivery, HookSubscription, PublicEvent)
            .join(HookSubscription, HookSubscription.id == HookDelivery.subscription_id)
            .join(PublicEvent, PublicEvent.id == HookDelivery.event_id)
            .where(
                HookDelivery.id == delivery_id,
                HookDelivery.claims == claim,
                HookDelivery.status == PENDING,
            )
        ).one_or_none()
        if row is None:
            return None
        _, sub, event = row
        body = json.dumps(
            message(event, rt.settings.public_url), ensure_ascii=False, separators=(",", ":")
        ).encode()
        return _Target(
            sub.target_url, rt.secrets.decrypt(sub.secret_encrypted), body, public_id(event.id)
        )


def _record(
    rt: Runtime,
    delivery_id: int,
    started: datetime,
    status: int | None,
    error: str | None,
    transient: bool,
    retry_after: float | None,
    took: int,
) -> str:
    with rt.sessions.begin() as s:
        delivery = s.get(HookDelivery, delivery_id, with_for_update=True)
        assert delivery is not None
        s.add(
            HookAttempt(
                delivery_id=delivery_id,
                attempted_at=started,
                status_code=status,
                error=error,
                duration_ms=took,
            )
        )
        delivery.attempts += 1
        now = utcnow()
        if status is not None and 200 <= status < 300:
            delivery.status, delivery.finished_at = HookDeliveryStatus.DELIVERED, now
            return "delivered"
        if status == 410:
            sub = s.get(HookSubscription, delivery.subscription_id, with_for_update=True)
            assert sub is not None
            delivery.status, delivery.finished_at = HookDeliveryStatus.CANCELLED, now
            end(s, sub, "gone", now)
            log.info("hook subscription %s answered 410: ended", sub.id)
            return "gone"
        wait = _backoff(delivery.attempts, retry_after)
        if transient and now + timedelta(seconds=wait) <= delivery.created_at + RETRY_WINDOW:
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            return "retry"
        delivery.status, delivery.finished_at = HookDeliveryStatus.FAILED, now
        return "failed"


def _backoff(attempts: int, retry_after: float | None) -> float:
    """Exponential with jitter, from 30 s to an hour; the target's Retry-After if longer."""
    delay = min(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)
    delay *= random.uniform(0.8, 1.2)
    return max(delay, retry_after or 0.0)


def deliveries_of(s: Session, subscription_id: int) -> Sequence[HookDelivery]:
    return s.scalars(
        select(HookDelivery)
        .where(HookDelivery.subscription_id == subscription_id)
        .order_by(HookDelivery.id.desc())
    ).all()
