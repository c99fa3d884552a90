"""Inbound webhooks: find the subscription, verify, parse, persist, acknowledge with 202."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import bindparam, select

from connector import intake, schemas
from connector.models import Subscription
from connector.spec import Delivery
from connector.standard_webhooks import SignatureError
from database import reading
from web import json_input

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
log = logging.getLogger(__name__)


def _error(status: int, error: str, message: str, **extra: Any) -> Any:
    return jsonify({"error": error, "message": message, **extra}), status


_ACTIVE_SUBSCRIPTION = select(  # built once: every delivery looks its hook up
    Subscription.id, Subscription.trigger_key, Subscription.secret_encrypted
).where(Subscription.token == bindparam("b_token"), Subscription.active.is_(True))


@bp.post("/<token>")
def receive(token: str) -> Any:
    rt = current_app.extensions["puente"]
    with reading(rt.sessions) as s:
        sub = s.execute(_ACTIVE_SUBSCRIPTION, {"b_token": token}).one_or_none()
    if sub is None:
        return _error(404, "unknown_hook", "no active webhook at this address; check the URL")
    trigger = rt.registry.trigger(sub.trigger_key)
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH answers 413 before we read more
    delivery = Delivery(headers={k.lower(): v for k, v in request.headers.items()}, body=body)
    try:
        delivery_id = trigger.verify(
            delivery,
            rt.secrets.decrypt(sub.secret_encrypted),
            int(time.time()),
            rt.settings.signature_tolerance_seconds,
        )
    except SignatureError as exc:
        log.warning("hook %s: rejected delivery from %s: %s", sub.id, request.remote_addr, exc)
        return _error(401, "invalid_signature", str(exc))
    try:
        payload = json_input.parse(body)
    except json_input.BadJson as exc:
        return _error(400, "invalid_json", str(exc))
    try:
        items = trigger.parse(payload, delivery_id)
    except ValueError as exc:
        return _error(400, "invalid_payload", str(exc))

    errors = []
    for index, item in enumerate(items):
        for err in schemas.validate(trigger.output_schema, item.data):
            path = f"[{index}].{err.path}" if len(items) > 1 else err.path
            errors.append(type(err)(path, err.message, err.code, err.params))
    if errors:
        result = intake.reject(rt, sub.id, sub.trigger_key, delivery_id, payload, errors)
    else:
        result = intake.accept(rt, sub.id, sub.trigger_key, items)
    if result.errors is not None:
        return _error(
            422,
            "invalid_deal",
            "the deal does not match the expected format; fix the fields listed and "
            "send it again with a new webhook-id",
            errors=result.errors,
            event_ids=result.event_ids,
        )
    body_out = {
        "run_ids": result.run_ids,
        "event_ids": result.event_ids,
        "duplicate": result.duplicate,
    }
    return jsonify(body_out), 200 if result.duplicate else 202
