"""REST hooks (Zapier's subscribe/unsubscribe; Make's attach/detach) and the event list
(Zapier's polling triggers, Make's "watch" modules, samples for both editors)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from sqlalchemy import select

from connector import rest_hooks
from connector.errors import ValidationError
from connector.models import HookAttempt, HookDelivery, HookSubscription, PublicEvent
from connector.outbound import Allowed
from connector.public_events import event_types, message, public_id
from web import current_runtime
from web.api import BIGGEST, ApiError, bp, iso, json_body, sessions, whole

MAX_EVENTS = 100


def subscription_json(sub: HookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "event": sub.event,
        "target_url": sub.target_url,
        "active": sub.active,
        "created_at": iso(sub.created_at),
        "ended_at": iso(sub.ended_at),
        "ended_reason": sub.ended_reason,
    }


@bp.post("/webhooks")
def subscribe() -> Any:
    """{"event", "target_url"} → 201 with the subscription and its "secret", shown once."""
    data = json_body()
    rt = current_runtime()
    for name in ("event", "target_url"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ApiError(422, "invalid", f"{name} is required (a text)", name)
    unknown = sorted(set(data) - {"event", "target_url"})
    if unknown:
        raise ApiError(422, "invalid", f"unknown field {unknown[0]!r}", unknown[0])
    event, target = data["event"].strip(), data["target_url"].strip()
    if event not in event_types(rt.registry):
        known = ", ".join(sorted(event_types(rt.registry)))
        raise ApiError(
            422, "invalid", f"unknown event type {event!r}; the types are {known}", "event"
        )
    if len(target) > 2000:
        raise ApiError(422, "invalid", "target_url must have at most 2000 characters", "target_url")
    with sessions().begin() as s:
        try:
            sub, secret = rest_hooks.subscribe(
                s,
                rt.secrets,
                rt.registry,
                Allowed.parse(rt.settings.http_allow),
                event,
                target,
                g.api_key.id,
            )
        except ValidationError as exc:
            raise ApiError(422, "invalid", str(exc), "target_url") from None
        return jsonify({**subscription_json(sub), "secret": secret}), 201


@bp.get("/webhooks")
def list_subscriptions() -> Any:
    with sessions()() as s:
        subs = s.scalars(select(HookSubscription).order_by(HookSubscription.id.desc()))
        return jsonify({"items": [subscription_json(sub) for sub in subs]})


@bp.delete("/webhooks/<int:sub_id>")
def unsubscribe(sub_id: int) -> Any:
    """Stop it at once; 204 also when it is gone already (a repeated unsubscribe is fine)."""
    with sessions().begin() as s:
        sub = s.get(HookSubscription, sub_id, with_for_update=True)
        if sub is not None and sub.active:
            rest_hooks.end(s, sub, "removed")
    return "", 204


@bp.get("/webhooks/<int:sub_id>/deliveries")
def deliveries(sub_id: int) -> Any:
    """Each delivery, newest first, with every attempt: when, what status, what error."""
    limit = min(whole("limit", 50, minimum=1), MAX_EVENTS)
    with sessions()() as s:
        if s.get(HookSubscription, sub_id) is None:
            raise ApiError(404, "not_found", f"webhook subscription {sub_id} does not exist")
        rows = s.execute(
            select(HookDelivery, PublicEvent.type)
            .join(PublicEvent, PublicEvent.id == HookDelivery.event_id)
            .where(HookDelivery.subscription_id == sub_id)
            .order_by(HookDelivery.id.desc())
            .limit(limit)
        ).all()
        attempts: dict[int, list[dict[str, Any]]] = {}
        for attempt in s.scalars(
            select(HookAttempt)
            .where(HookAttempt.delivery_id.in_([d.id for d, _ in rows]))
            .order_by(HookAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(
                {
                    "attempted_at": iso(attempt.attempted_at),
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                    "duration_ms": attempt.duration_ms,
                }
            )
        items = [
            {
                "id": d.id,
                "event_id": public_id(d.event_id),
                "event_type": type_,
                "status": d.status,
                "created_at": iso(d.created_at),
                "finished_at": iso(d.finished_at),
                "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
                "attempts": attempts.get(d.id, []),
            }
            for d, type_ in rows
        ]
        return jsonify({"items": items})


def _cursor() -> int | None:
    raw = request.args.get("after")
    if raw is None or raw == "":
        return None
    digits = raw.removeprefix("evt_")
    if not digits.isdigit() or not 0 < int(digits) <= BIGGEST:
        raise ApiError(
            400,
            "bad_request",
            f"after must be an event id such as evt_42 (the last one of the page before), "
            f"got {raw!r}",
            "after",
        )
    return int(digits)


@bp.get("/events")
def list_events() -> Any:
    """Public events newest first: `type` filters, `after` continues below an event id."""
    rt = current_runtime()
    type_ = request.args.get("type")
    if type_ is not None and type_ not in event_types(rt.registry):
        known = ", ".join(sorted(event_types(rt.registry)))
        raise ApiError(
            400, "bad_request", f"unknown event type {type_!r}; the types are {known}", "type"
        )
    limit = whole("limit", 20, minimum=1)
    if limit > MAX_EVENTS:
        raise ApiError(400, "bad_request", f"limit must be at most {MAX_EVENTS}", "limit")
    after = _cursor()
    query = select(PublicEvent).order_by(PublicEvent.id.desc()).limit(limit)
    if type_ is not None:
        query = query.where(PublicEvent.type == type_)
    if after is not None:
        query = query.where(PublicEvent.id < after)
    with sessions()() as s:
        events = s.scalars(query).all()
    items = [message(event, rt.settings.public_url) for event in events]
    last = items[-1]["id"] if len(items) == limit else None
    return jsonify({"items": items, "next": last})
