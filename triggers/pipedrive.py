"""Pipedrive: a deal's stage or status changed (webhooks v1 and v2), at the connection's address.

Pipedrive does not sign its webhooks: a webhook is created with an HTTP Basic user and password
that Pipedrive sends in the Authorization header of every delivery, checked here against the
connection's `webhook_user` / `webhook_password`. Puente registers that webhook itself
(`subscribe`, POST /v1/webhooks) while a flow uses it, and removes it with the last flow.

Only a change of stage, or of status to "won", is a deal event here (writing the invoice's
fields back on the deal changes neither, so it never starts a run); whether the deal counts
as won is decided when the flow reads it (`pipedrive.get_deal`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from actions.crm import check
from connector.errors import ConfigurationError, TransientError
from connector.spec import Delivery, Entity, ParsedItem, PollContext, TriggerKind, TriggerSpec
from connector.standard_webhooks import SignatureError

WEBHOOK_VERSION = "2.0"  # the version Puente registers (Pipedrive's recommended one)


def verify(delivery: Delivery, secret: str, _now: int, _tolerance: int) -> str:
    """The delivery's HTTP Basic credentials are the connection's webhook user and password
    (compared in constant time); the delivery id is Pipedrive's event id when it has one."""
    try:
        credentials = json.loads(secret or "{}")
    except ValueError:
        credentials = {}
    user, password = credentials.get("webhook_user"), credentials.get("webhook_password")
    if not user or not password:
        raise SignatureError(
            "this Pipedrive connection has no webhook_user/webhook_password: set them on the "
            "connection and register the webhook with them"
        )
    given = _basic(delivery.headers.get("authorization", ""))
    expected = f"{user}:{password}".encode()
    if given is None or not hmac.compare_digest(given, expected):
        raise SignatureError(
            "the delivery does not carry the connection's webhook user and password "
            "(HTTP Basic): check the webhook's credentials in Pipedrive"
        )
    return _delivery_id(delivery.body)


def _basic(header: str) -> bytes | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _delivery_id(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("meta"), dict):
        key = _event_key(payload)
        if key:
            return key
    return "body:" + hashlib.sha256(body).hexdigest()[:40]


def _event_key(payload: dict[str, Any]) -> str | None:
    """v2: the event's own id (meta.id); v1: meta.id is the deal's, so the deal plus the
    event's time in microseconds (unchanged when Pipedrive retries the delivery)."""
    meta = payload.get("meta") or {}
    if _is_v2(payload):
        return f"v2:{meta['id']}" if meta.get("id") not in (None, "") else None
    when = meta.get("timestamp_micro") or meta.get("timestamp")
    if meta.get("id") in (None, "") or when in (None, ""):
        return None
    return f"v1:{meta['id']}:{when}"


def _is_v2(payload: dict[str, Any]) -> bool:
    meta = payload.get("meta") or {}
    return str(meta.get("version", "")).startswith("2") or "entity" in meta


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """A deal whose stage changed or that became won → one item; anything else → none."""
    if not isinstance(payload, dict):
        raise ValueError("a Pipedrive webhook is a JSON object with meta and the deal")
    if "meta" not in payload and "deal_id" in payload and "event_id" in payload:
        return _already_normalized(payload)
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise ValueError("a Pipedrive webhook has a meta object")
    found = _v2(payload, meta) if _is_v2(payload) else _v1(payload, meta)
    if found is None:
        return []
    deal, stage = found
    key = _event_key(payload) or delivery_id
    data: dict[str, Any] = {
        "deal_id": str(deal),
        "event_id": key,
        "occurred_at": _when(meta.get("timestamp")),
        "stage": None if stage in (None, "") else str(stage),
        "account_id": None if meta.get("company_id") in (None, "") else str(meta["company_id"]),
    }
    return [ParsedItem(f"pipedrive:{key}", data)]


def _v2(payload: dict[str, Any], meta: dict[str, Any]) -> tuple[Any, Any] | None:
    if meta.get("entity") != "deal" or meta.get("action") != "change":
        return None
    data, previous = payload.get("data"), payload.get("previous")
    if not isinstance(data, dict) or not isinstance(previous, dict):
        return None
    moved = "stage_id" in previous and previous["stage_id"] != data.get("stage_id")
    won = "status" in previous and previous["status"] != "won" and data.get("status") == "won"
    if not (moved or won):
        return None
    deal = meta.get("entity_id") or data.get("id")
    return (deal, data.get("stage_id")) if deal not in (None, "") else None


def _v1(payload: dict[str, Any], meta: dict[str, Any]) -> tuple[Any, Any] | None:
    event = payload.get("event") or f"{meta.get('action')}.{meta.get('object')}"
    if event != "updated.deal":
        return None
    current, previous = payload.get("current"), payload.get("previous")
    if not isinstance(current, dict) or not isinstance(previous, dict):
        return None
    moved = previous.get("stage_id") != current.get("stage_id")
    won = previous.get("status") != "won" and current.get("status") == "won"
    if not (moved or won):
        return None
    deal = meta.get("id") or current.get("id")
    return (deal, current.get("stage_id")) if deal not in (None, "") else None


def _already_normalized(payload: dict[str, Any]) -> list[ParsedItem]:
    """An event already in Puente's shape (schemas/triggers/crm_deal_event.json), as a test or
    a replay tool sends it: taken as it is."""
    fields = ("deal_id", "event_id", "occurred_at", "stage", "account_id")
    data = {k: payload[k] for k in fields if k in payload}
    return [ParsedItem(f"pipedrive:{payload['event_id']}", data)]


def _when(stamp: Any) -> str | None:
    """Pipedrive's meta.timestamp (unix seconds in v1, ISO 8601 in v2) as ISO 8601 UTC."""
    if stamp in (None, ""):
        return None
    if isinstance(stamp, int | float) or (isinstance(stamp, str) and stamp.isdigit()):
        return datetime.fromtimestamp(float(stamp), UTC).isoformat()
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def entity(data: dict[str, Any]) -> Entity:
    return Entity("pipedrive", str(data["deal_id"]))


# Lifecycle: the webhook at Pipedrive, created while a flow uses it.


def subscribe(ctx: PollContext, url: str) -> dict[str, Any]:
    """POST /v1/webhooks: deal changes to the connection's address, with its Basic auth."""
    user, password = ctx.secret.get("webhook_user"), ctx.secret.get("webhook_password")
    if not user or not password:
        raise ConfigurationError(
            f"connection {ctx.connection!r} has no webhook_user/webhook_password: set them "
            "so Pipedrive can authenticate its webhooks"
        )
    assert ctx.http is not None
    answer = check(
        ctx.http.request(
            "POST",
            "v1/webhooks",
            connection=ctx.connection,
            payload={
                "subscription_url": url,
                "event_action": "change",
                "event_object": "deal",
                "http_auth_user": user,
                "http_auth_password": password,
                "version": WEBHOOK_VERSION,
            },
        ),
        "registering Puente's webhook in Pipedrive",
    )
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    webhook = data.get("id") if isinstance(data, dict) else None
    if webhook is None:
        raise TransientError("Pipedrive created the webhook but did not say its id")
    return {"webhook_id": str(webhook), "version": WEBHOOK_VERSION}


def unsubscribe(ctx: PollContext, state: dict[str, Any]) -> None:
    """DELETE /v1/webhooks/{id}; one already gone (404) is as good as removed."""
    webhook = state.get("webhook_id")
    if not webhook:
        return
    assert ctx.http is not None
    answer = ctx.http.request("DELETE", f"v1/webhooks/{webhook}", connection=ctx.connection)
    if answer.status != 404:
        check(answer, f"removing Puente's webhook {webhook} from Pipedrive")


DEAL_WON = TriggerSpec(
    key="pipedrive.deal_won",
    title="Deal won (Pipedrive)",
    title_es="Oportunidad ganada (Pipedrive)",
    description="A Pipedrive deal moved to another stage or marked won; the flow reads it "
    "and goes on only when it counts as won.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"),),
    provider="pipedrive",
    verify=verify,
    parse=parse,
    subscribe=subscribe,
    unsubscribe=unsubscribe,
)
