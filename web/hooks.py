"""Inbound webhooks: find the address, verify, parse, persist, acknowledge.

An address belongs to a standalone subscription (the generic signed trigger, one trigger)
or to a connection (a CRM sends all its events to one URL, signed with the account's
secret): one delivery then goes through each webhook trigger of the connection's provider,
and fans out to every enabled flow on that trigger, once each, deduplicated per item.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select

from connector import intake, pace
from connector.models import Connection, Subscription
from connector.runtime import Runtime
from connector.spec import Delivery, TriggerKind, TriggerSpec
from connector.standard_webhooks import SignatureError
from database import reading
from web import current_runtime, json_input

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
log = logging.getLogger(__name__)


def _error(status: int, error: str, message: str, **extra: Any) -> Any:
    return jsonify({"error": error, "message": message, **extra}), status


REFUSED = "puente:refused-deliveries"  # the latest deliveries refused before being stored
REFUSED_KEPT = 200


def _refused(rt: Runtime, route: intake.Route, error: str) -> None:
    """Note a delivery refused before it was stored (bad signature, unreadable body) where
    admins see it (Ejecuciones → Entregas rechazadas): when, at which address, why. A bounded
    list in Redis: an attacker's flood cannot grow it, and no body is kept."""
    entry = json.dumps({"at": time.time(), "source": route.source, "error": error})
    try:
        with rt.redis.pipeline() as pipe:
            pipe.lpush(REFUSED, entry)
            pipe.ltrim(REFUSED, 0, REFUSED_KEPT - 1)
            pipe.execute()
    except RedisError:
        log.warning("could not note the refused delivery at %s", route.source)


_ACTIVE_SUBSCRIPTION = select(  # built once: every delivery looks its hook up
    Subscription.id, Subscription.trigger_key, Subscription.secret_encrypted
).where(Subscription.token == bindparam("b_token"), Subscription.active.is_(True))
_CONNECTION = select(
    Connection.id, Connection.name, Connection.type, Connection.secret_encrypted
).where(Connection.inbound_token == bindparam("b_token"))


@bp.post("/<token>")
def receive(token: str) -> Any:
    rt = current_runtime()
    with reading(rt.sessions) as s:
        sub = s.execute(_ACTIVE_SUBSCRIPTION, {"b_token": token}).one_or_none()
        conn = None if sub is not None else s.execute(_CONNECTION, {"b_token": token}).one_or_none()
    if sub is not None:
        route = intake.Route.subscription(sub.id)
        triggers = [rt.registry.trigger(sub.trigger_key)]
        secret = rt.secrets.decrypt(sub.secret_encrypted)
    elif conn is not None:
        route = intake.Route.connection(conn.id, conn.name)
        triggers = [
            t
            for t in rt.registry.triggers.values()
            if t.kind is TriggerKind.WEBHOOK and t.provider == conn.type
        ]
        # The account's credentials (a CRM signs with its app's or account's secret), as a
        # JSON object: the provider's triggers take the fields they verify with.
        secret = rt.secrets.decrypt(conn.secret_encrypted) if conn.secret_encrypted else "{}"
    else:
        return _error(404, "unknown_hook", "no active webhook at this address; check the URL")
    if not triggers:
        return _error(404, "unknown_hook", "this connection receives no webhooks")
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH answers 413 before we read more
    delivery = Delivery(
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        method=request.method,
        # The address the sender called, as it signed it (HubSpot v3 signs the full URI):
        # the public URL, not what a proxy in front of us forwarded.
        url=rt.settings.public_url.rstrip("/") + request.full_path.rstrip("?"),
        query=request.args.to_dict(),
    )
    return _deliver(rt, route, triggers, delivery, secret)


def _paced(rt: Runtime, route: intake.Route, items: int) -> Any:
    """Whether the integration may send `items` now (connector.pace): the answer refusing
    them, or (admitted) whether their runs take the bulk queue."""
    assert route.scope is not None  # a hook's route is a subscription's or a connection's
    admitted = pace.admit(rt, route.scope, items, pace.HOOK)
    if isinstance(admitted, bool):
        return admitted
    if admitted.status == 413:
        _refused(rt, route, admitted.error)
    response, status = _error(
        admitted.status, admitted.error, admitted.said.en, message_es=admitted.said.es
    )
    if admitted.retry_after is not None:
        response.headers["Retry-After"] = str(admitted.retry_after)
    return response, status


def _deliver(
    rt: Runtime, route: intake.Route, triggers: list[TriggerSpec], delivery: Delivery, secret: str
) -> Any:
    first = triggers[0]
    assert first.verify is not None and first.parse is not None
    try:
        # The triggers of one address share its secret and its signature scheme.
        delivery_id = first.verify(
            delivery, secret, int(time.time()), rt.settings.signature_tolerance_seconds
        )
    except SignatureError as exc:
        log.warning("%s: rejected delivery from %s: %s", route.source, request.remote_addr, exc)
        _refused(rt, route, "invalid_signature")
        return _error(401, "invalid_signature", str(exc))
    except ValueError as exc:  # a body its verify cannot even read (hostile XML, say)
        _refused(rt, route, "invalid_payload")
        return _error(400, "invalid_payload", str(exc))
    try:
        # An XML trigger reads its own body, safely; the others get it as strict JSON.
        raw = first.body_format == "xml"
        payload = delivery.body if raw else json_input.parse(delivery.body)
    except json_input.BadJson as exc:
        _refused(rt, route, "invalid_json")
        return _error(400, "invalid_json", str(exc))
    parsed = []
    for trigger in triggers:
        assert trigger.parse is not None
        try:
            items = trigger.parse(payload, delivery_id, {})
        except ValueError as exc:
            return _error(400, "invalid_payload", str(exc))
        if items:  # else not an event this trigger cares about
            parsed.append((trigger, items))
    bulk = _paced(rt, route, sum(len(items) for _, items in parsed))
    if not isinstance(bulk, bool):
        return bulk  # refused: nothing is stored
    event_ids: list[int] = []
    run_ids: list[int] = []
    duplicate = True
    for trigger, items in parsed:
        errors = intake.invalid(trigger, items)
        if errors:
            # A raw body is not kept (it may carry a session id): the items read from it are.
            kept = [item.data for item in items] if raw else payload
            result = intake.reject(rt, route, trigger.key, delivery_id, kept, errors)
        else:
            result = intake.accept(rt, route, trigger, items, bulk)
        if result.errors is not None:
            return _error(
                422,
                "invalid_deal",
                "the deal does not match the expected format; fix the fields listed and "
                "send it again with a new webhook-id",
                errors=result.errors,
                event_ids=result.event_ids,
            )
        event_ids += result.event_ids
        run_ids += result.run_ids
        duplicate = duplicate and result.duplicate
    duplicate = duplicate and bool(event_ids)
    if first.answer is not None:
        answer = first.answer(delivery)
        return Response(answer.body, answer.status, content_type=answer.content_type)
    body_out = {"run_ids": run_ids, "event_ids": event_ids, "duplicate": duplicate}
    return jsonify(body_out), 200 if duplicate else 202
