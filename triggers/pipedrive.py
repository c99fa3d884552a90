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
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from actions.crm import check
from connector.errors import ConfigurationError, TransientError
from connector.spec import (
    Delivery,
    Entity,
    ParsedItem,
    PollContext,
    PollResult,
    TriggerKind,
    TriggerSpec,
)
from connector.standard_webhooks import SignatureError
from providers.crm import CrmSettings

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
    return _register(ctx, url, "deal", "change")


def subscribe_organizations(ctx: PollContext, url: str) -> dict[str, Any]:
    """POST /v1/webhooks: every organization event ("*": created, changed; deletions are
    ignored by `parse_organization`) to the connection's address, with its Basic auth."""
    return _register(ctx, url, "organization", "*")


def _register(ctx: PollContext, url: str, kind: str, action: str) -> dict[str, Any]:
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
                "event_action": action,
                "event_object": kind,
                "http_auth_user": user,
                "http_auth_password": password,
                "version": WEBHOOK_VERSION,
            },
        ),
        f"registering Puente's webhook for {kind} events in Pipedrive",
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


# Polling: for accounts that cannot register webhooks (no admin rights, say).

RECENTS_PAGE = 500  # the most Pipedrive gives in one page
RECENTS_PAGES = 10  # a bound on one poll: the rest waits for the next poll, past the cursor
FIELD_PAGES = 20  # a bound on reading /v1/dealFields
STAMP = "%Y-%m-%d %H:%M:%S"  # Pipedrive's v1 times and since_timestamp: UTC, to the second
HASH_KEY = re.compile(r"^[0-9a-f]{40}$")


def poll(ctx: PollContext, cursor: Any) -> PollResult:
    """The deals changed since `cursor` (GET /v1/recents?items=deal&since_timestamp=…, oldest
    first), one item per deal and change, and the newest change (update_time) as the next
    cursor.

    The first poll (no cursor) only asks where the account stands (its most recently updated
    deal) and starts a second past it; polling.py fires nothing for it. Pipedrive's times have
    whole seconds and /v1/recents gives what changed after since_timestamp, so each poll asks
    from a second before the cursor and keeps what changed at the cursor or later: a change
    read twice has the same key (the deal and its update_time) and starts nothing again.
    Deals already invoiced (the invoice link field set) are left out: writing the invoice
    back changes the deal, and must not start it again."""
    if ctx.http is None or ctx.connection is None:
        raise ConfigurationError("this trigger reads Pipedrive through a connection: choose one")
    view = ctx.http.view(ctx.connection)
    if cursor is None:
        return PollResult([], _start(ctx))
    since = _time(cursor)
    query = {
        "since_timestamp": (since - timedelta(seconds=1)).strftime(STAMP),
        "items": "deal",
        "limit": RECENTS_PAGE,
    }
    linked = CrmSettings.of(view).invoice_url_field
    link_key: str | None = linked if HASH_KEY.match(linked) else None
    changed: dict[str, tuple[datetime, dict[str, Any]]] = {}
    start = 0
    for _ in range(RECENTS_PAGES):
        body = _get(ctx, f"v1/recents?{urlencode({**query, 'start': start})}", "recent deals")
        for row in body.get("data") or []:  # "data": null when nothing changed
            deal = row.get("data") if isinstance(row, dict) and row.get("item") == "deal" else None
            if not isinstance(deal, dict) or deal.get("id") in (None, ""):
                continue
            when = _time_or_none(deal.get("update_time"))
            if when is None or when < since or deal.get("deleted") is True:
                continue
            changed[str(deal["id"])] = (when, deal)  # a deal listed twice: its latest
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        if not pagination.get("more_items_in_collection"):
            break
        following = pagination.get("next_start")
        start = int(following) if following is not None else start + RECENTS_PAGE
    if not changed:
        return PollResult([], cursor)
    if link_key is None:
        link_key = _deal_field_key(ctx, linked)
    items = [
        _polled(deal_id, when, deal, view.account_id)
        for deal_id, (when, deal) in sorted(changed.items(), key=lambda kv: kv[1][0])
        if not (link_key and _has(deal, link_key))
    ]
    newest = max(when for when, _ in changed.values())
    return PollResult(items, max(newest, since).strftime(STAMP))


def _start(ctx: PollContext) -> str:
    """A second past the most recently updated deal (or now, for an account with none)."""
    query = urlencode({"status": "all_not_deleted", "sort": "update_time DESC", "limit": 1})
    body = _get(ctx, f"v1/deals?{query}", "the most recently updated deal")
    rows = [r for r in body.get("data") or [] if isinstance(r, dict)]
    newest = _time_or_none(rows[0].get("update_time")) if rows else None
    if newest is None:
        return datetime.now(UTC).strftime(STAMP)
    return (newest + timedelta(seconds=1)).strftime(STAMP)


def _get(ctx: PollContext, path: str, what: str) -> dict[str, Any]:
    """GET through the connection; 429 and 5xx are raised by the outbound client (the poll
    waits for its next turn with its cursor unchanged), a refusal says what to check."""
    assert ctx.http is not None
    answer = ctx.http.request("GET", path, connection=ctx.connection)
    if answer.status in (401, 403):
        raise ConfigurationError(
            f"Pipedrive refused to list {what} (HTTP {answer.status}): check the connection's "
            "api_token and that its user can see the deals"
        )
    check(answer, f"reading {what} from Pipedrive")
    return answer.body if isinstance(answer.body, dict) else {}


def _deal_field_key(ctx: PollContext, name: str) -> str | None:
    """The key of the deal field called `name` (or with that key), from /v1/dealFields."""
    start = 0
    for _ in range(FIELD_PAGES):
        body = _get(ctx, f"v1/dealFields?start={start}&limit={RECENTS_PAGE}", "deal fields")
        for field in body.get("data") or []:
            if not isinstance(field, dict) or not isinstance(field.get("key"), str):
                continue
            if name.casefold() in (field["key"].casefold(), str(field.get("name")).casefold()):
                return str(field["key"])
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        if not pagination.get("more_items_in_collection"):
            return None
        following = pagination.get("next_start")
        start = int(following) if following is not None else start + RECENTS_PAGE
    return None


def _has(deal: dict[str, Any], key: str) -> bool:
    value = deal.get(key)
    if value in (None, "") and isinstance(deal.get("custom_fields"), dict):
        value = deal["custom_fields"].get(key)
    if isinstance(value, dict):
        value = value.get("value")
    return value not in (None, "")


def _time(stamp: Any) -> datetime:
    when = _time_or_none(stamp)
    if when is None:
        raise ConfigurationError(f"the poll's cursor {stamp!r} is not a time: reset the flow")
    return when


def _time_or_none(stamp: Any) -> datetime | None:
    """Pipedrive's "2026-11-27 10:15:00" (UTC) or ISO 8601, to the second, in UTC."""
    if not isinstance(stamp, str) or not stamp.strip():
        return None
    try:
        when = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def _polled(deal_id: str, when: datetime, deal: dict[str, Any], company: str | None) -> ParsedItem:
    stage = deal.get("stage_id")
    stamp = when.isoformat()
    data = {
        "deal_id": deal_id,
        "event_id": f"{deal_id}@{stamp}",
        "occurred_at": stamp,
        "stage": None if stage in (None, "") else str(stage),
        "account_id": company,
    }
    return ParsedItem(f"pipedrive-poll:{deal_id}@{stamp}", data)


DEAL_WON_POLLED = TriggerSpec(
    key="pipedrive.deal_won_polled",
    title="Deal won (Pipedrive, read every few minutes)",
    title_es="Oportunidad ganada (Pipedrive, leída cada pocos minutos)",
    description="Pipedrive deals changed since the last poll, for accounts that cannot "
    "register webhooks; the flow reads each and goes on only when it counts as won.",
    kind=TriggerKind.POLL,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,  # the webhook's: a deal arriving both ways is one entity, one invoice
    business_keys=(("deal_ref", "deal_id"),),
    provider="pipedrive",
    poll=poll,
    poll_every_seconds=300,
)


# Organizations: added or changed in Pipedrive → the customer in Puente.


def parse_organization(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """An organization added or updated (webhooks v2 create/change, v1 added/updated.
    organization) → one item; anything else (deals, deletions) → none."""
    if not isinstance(payload, dict):
        raise ValueError("a Pipedrive webhook is a JSON object with meta and the organization")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise ValueError("a Pipedrive webhook has a meta object")
    if _is_v2(payload):
        if meta.get("entity") != "organization" or meta.get("action") not in ("create", "change"):
            return []
        record = payload.get("data")
        org = meta.get("entity_id") or (record.get("id") if isinstance(record, dict) else None)
    else:
        event = payload.get("event") or f"{meta.get('action')}.{meta.get('object')}"
        if event not in ("added.organization", "updated.organization"):
            return []
        record = payload.get("current")
        org = meta.get("id") or (record.get("id") if isinstance(record, dict) else None)
    if org in (None, ""):
        return []
    key = _event_key(payload) or delivery_id
    data = {
        "company_id": str(org),
        "event_id": key,
        "occurred_at": _when(meta.get("timestamp")),
        "account_id": None if meta.get("company_id") in (None, "") else str(meta["company_id"]),
    }
    return [ParsedItem(f"pipedrive-organization:{key}", data)]


def organization_entity(data: dict[str, Any]) -> Entity:
    return Entity("pipedrive-organization", str(data["company_id"]))


ORGANIZATION_CHANGED = TriggerSpec(
    key="pipedrive.organization_changed",
    title="Organization added or changed (Pipedrive)",
    title_es="Organización creada o modificada (Pipedrive)",
    description="A Pipedrive organization was added or updated; the flow reads it and keeps "
    "its customer (by NIF/CIF) in Puente.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_company_event.json",
    entity=organization_entity,
    business_keys=(("company_ref", "company_id"),),
    provider="pipedrive",
    verify=verify,  # the deal webhook's: one address, the same user and password
    parse=parse_organization,
    subscribe=subscribe_organizations,
    unsubscribe=unsubscribe,
)
