"""HubSpot: a deal moved to another stage (webhook `deal.propertyChange` of `dealstage`), at the
connection's address.

HubSpot posts a JSON array of events, signed with the app's client secret: signature v3
(`X-HubSpot-Signature-v3`, base64 HMAC-SHA256 of method + URI + body + timestamp, with
`X-HubSpot-Request-Timestamp` in milliseconds, refused when older than the tolerance, 5 minutes
by default), or v1/v2 (`X-HubSpot-Signature`, hex SHA-256) on apps that still send those.

Only a change of `dealstage` is a deal event here (writing the invoice's fields back on the
deal changes other properties, so it never starts a run); whether the new stage counts as won
is decided when the flow reads the deal (`hubspot.get_deal`, by the pipeline's metadata or the
connection's `won_stages`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from connector.errors import ConfigurationError
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

DEAL_TYPE_ID = "0-3"  # HubSpot's object type id of deals (generic object.* subscriptions)
COMPANY_TYPE_ID = "0-2"  # and of companies
# HubSpot's v3 rule: these escapes in the URI are signed as the characters they stand for.
URI_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def verify(delivery: Delivery, secret: str, now: int, tolerance: int) -> str:
    """The delivery is signed with the connection's client secret (v3 when HubSpot sends it,
    else v1/v2 as X-HubSpot-Signature-Version says); the delivery id names its events."""
    try:
        credentials = json.loads(secret or "{}")
    except ValueError:
        credentials = {}
    key = credentials.get("client_secret") if isinstance(credentials, dict) else None
    if not key:
        raise SignatureError(
            "this HubSpot connection has no client_secret: copy the app's client secret "
            "(private app → Auth) into the connection"
        )
    headers = delivery.headers
    if headers.get("x-hubspot-signature-v3"):
        _verify_v3(delivery, key, now, tolerance)
    else:
        _verify_v1_v2(delivery, key)
    return _delivery_id(delivery.body)


def _verify_v3(delivery: Delivery, key: str, now: int, tolerance: int) -> None:
    given = delivery.headers["x-hubspot-signature-v3"].strip()
    stamp = delivery.headers.get("x-hubspot-request-timestamp", "").strip()
    if not stamp.isdigit():
        raise SignatureError(
            "the delivery has X-HubSpot-Signature-v3 but no X-HubSpot-Request-Timestamp"
        )
    if abs(now * 1000 - int(stamp)) > tolerance * 1000:
        raise SignatureError(
            f"the delivery's X-HubSpot-Request-Timestamp is more than {tolerance} seconds "
            "away from now: a replay, or a clock that is wrong"
        )
    signed = delivery.method.upper().encode() + _uri(delivery.url).encode()
    signed += delivery.body + stamp.encode()
    expected = base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, given.encode()):
        raise SignatureError(
            "the X-HubSpot-Signature-v3 does not match: check the connection's client_secret "
            "(the app's, under Auth) and that HubSpot calls the connection's webhook URL as "
            "Puente shows it"
        )


def _verify_v1_v2(delivery: Delivery, key: str) -> None:
    given = delivery.headers.get("x-hubspot-signature", "").strip().lower()
    version = delivery.headers.get("x-hubspot-signature-version", "v1").strip().lower()
    if not given:
        raise SignatureError(
            "the delivery is not signed by HubSpot (no X-HubSpot-Signature-v3 nor "
            "X-HubSpot-Signature header)"
        )
    if version == "v1":
        source = key.encode() + delivery.body
    elif version == "v2":
        source = key.encode() + delivery.method.upper().encode() + delivery.url.encode()
        source += delivery.body
    else:
        raise SignatureError(f"unknown X-HubSpot-Signature-Version {version[:10]!r}")
    expected = hashlib.sha256(source).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError(
            f"the X-HubSpot-Signature ({version}) does not match: check the connection's "
            "client_secret (the app's, under Auth)"
        )


def _uri(url: str) -> str:
    for escaped, plain in URI_DECODED.items():
        url = url.replace(escaped, plain).replace(escaped.lower(), plain)
    return url


def _delivery_id(body: bytes) -> str:
    """The batch's events (unchanged when HubSpot tries again; attemptNumber aside)."""
    try:
        events = json.loads(body)
    except ValueError:
        events = None
    if isinstance(events, list) and events and all(isinstance(e, dict) for e in events):
        keys = sorted(_event_key(e) for e in events)
        return "batch:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]
    return "body:" + hashlib.sha256(body).hexdigest()[:40]


def _event_key(event: dict[str, Any]) -> str:
    """HubSpot says eventId alone is not guaranteed unique: with the account, the object and
    the time it names one event, and a retry (a new attemptNumber) names the same."""
    parts = (event.get(k) for k in ("portalId", "objectId", "eventId", "occurredAt"))
    return ":".join("" if p is None else str(p) for p in parts)


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """Each deal stage change in the batch → one item; any other event → none."""
    if isinstance(payload, dict):
        payload = [payload]  # one event, as a test tool may send it
    if not isinstance(payload, list):
        raise ValueError("a HubSpot webhook is a JSON array of events")
    items = []
    for event in payload:
        if not isinstance(event, dict) or not _stage_change(event):
            continue
        deal = event.get("objectId")
        if deal in (None, "") or event.get("eventId") in (None, ""):
            raise ValueError("a HubSpot deal event has objectId and eventId")
        stage = event.get("propertyValue")
        portal = event.get("portalId")
        data = {
            "deal_id": str(deal),
            "event_id": str(event["eventId"]),
            "occurred_at": _when(event.get("occurredAt")),
            "stage": None if stage in (None, "") else str(stage),
            "account_id": None if portal in (None, "") else str(portal),
        }
        items.append(ParsedItem(f"hubspot:{_event_key(event)}", data))
    return items


def _stage_change(event: dict[str, Any]) -> bool:
    if event.get("propertyName") != "dealstage":
        return False
    kind = event.get("subscriptionType")
    if kind == "deal.propertyChange":
        return True
    # The developer platform's generic subscriptions name the object by its type id.
    return kind == "object.propertyChange" and str(event.get("objectTypeId")) == DEAL_TYPE_ID


def _when(millis: Any) -> str | None:
    """occurredAt (milliseconds since 1970) as ISO 8601 UTC."""
    try:
        return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def entity(data: dict[str, Any]) -> Entity:
    return Entity("hubspot", str(data["deal_id"]))


DEAL_WON = TriggerSpec(
    key="hubspot.deal_won",
    title="Deal won (HubSpot)",
    title_es="Oportunidad ganada (HubSpot)",
    description="A HubSpot deal moved to another stage; the flow reads it and goes on only "
    "when the stage counts as won.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"),),
    provider="hubspot",
    verify=verify,
    parse=parse,
)


# Polling: for accounts that cannot register webhooks (no app of their own, say).

MODIFIED = "hs_lastmodifieddate"  # a deal's last change, kept by HubSpot
SEARCH = "crm/v3/objects/deals/search"
SEARCH_PAGE = 200  # the most a CRM search gives in one page
SEARCH_PAGES = 10  # a bound on one poll: the rest waits for the next poll, past the cursor
SINCE_EVER = "1970-01-01T00:00:00Z"  # the cursor of an account that had no deals at all


def poll(ctx: PollContext, cursor: Any) -> PollResult:
    """The deals changed since `cursor` (HubSpot's CRM search on hs_lastmodifieddate, oldest
    first), one item per change, and the newest change as the next cursor.

    The first poll (no cursor) only asks where the account stands (its newest change) and
    starts just past it; polling.py fires nothing for it. The search is "from the cursor on"
    (GTE): a deal changed at the cursor's very millisecond is read again and dropped as
    already seen (its key is the deal and its change's time). Deals already invoiced (their
    invoice link property set) are left out: writing the invoice back changes the deal, and
    must not start it again."""
    if ctx.http is None or ctx.connection is None:
        raise ConfigurationError("this trigger reads HubSpot through a connection: choose one")
    view = ctx.http.view(ctx.connection)
    if cursor is None:
        newest = _search(ctx, {"sorts": [{"propertyName": MODIFIED, "direction": "DESCENDING"}]})
        rows = [r for r in newest.get("results") or [] if _modified(r)]
        if not rows:
            return PollResult([], SINCE_EVER)
        # Just past the newest change: what exists now is never read as new.
        return PollResult([], _when(_millis(_modified(rows[0])) + 1))
    linked = CrmSettings.of(view).invoice_url_field
    filters = [
        {"propertyName": MODIFIED, "operator": "GTE", "value": str(_millis(cursor))},
        {"propertyName": linked, "operator": "NOT_HAS_PROPERTY"},
    ]
    items: list[ParsedItem] = []
    newest_seen = str(cursor)
    after: str | None = None
    for _ in range(SEARCH_PAGES):
        query: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
            "properties": ["dealstage", MODIFIED],
            "limit": SEARCH_PAGE,
        }
        if after:
            query["after"] = after
        body = _search(ctx, query)
        for row in body.get("results") or []:
            changed = _modified(row)
            if not isinstance(row, dict) or row.get("id") in (None, "") or changed is None:
                continue
            items.append(_polled(row, changed, view.account_id))
            if _millis(changed) >= _millis(newest_seen):
                newest_seen = changed
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            break
    return PollResult(items, newest_seen)


def _search(ctx: PollContext, query: dict[str, Any]) -> dict[str, Any]:
    """POST the search; 429 and 5xx are raised by the outbound client (the poll waits for
    its next turn with its cursor unchanged), any other refusal says what to check."""
    assert ctx.http is not None
    answer = ctx.http.request("POST", SEARCH, connection=ctx.connection, payload=query)
    if answer.status in (401, 403):
        raise ConfigurationError(
            f"HubSpot refused to search deals ({answer.status}): check the connection's "
            "access_token and that the private app has the scope crm.objects.deals.read"
        )
    if answer.status >= 400:
        raise ConfigurationError(
            f"HubSpot refused the deal search ({answer.status}: {str(answer.body)[:300]}); "
            "check that the deal property for the invoice link exists (settings."
            "invoice_url_field)"
        )
    return answer.body if isinstance(answer.body, dict) else {}


def _modified(row: Any) -> str | None:
    props = row.get("properties") if isinstance(row, dict) else None
    value = (props or {}).get(MODIFIED)
    return str(value) if value not in (None, "") else None


def _millis(stamp: Any) -> int:
    """HubSpot's datetime (ISO 8601 "…Z", or milliseconds) in milliseconds since 1970, as
    the search's filters take it."""
    text = str(stamp).strip()
    if text.isdigit():
        return int(text)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _polled(row: dict[str, Any], changed: str, portal: str | None) -> ParsedItem:
    deal_id = str(row["id"])
    stage = (row.get("properties") or {}).get("dealstage")
    data = {
        "deal_id": deal_id,
        "event_id": f"{deal_id}@{changed}"[:150],
        "occurred_at": _when(_millis(changed)),
        "stage": None if stage in (None, "") else str(stage),
        "account_id": portal,
    }
    return ParsedItem(f"hubspot-poll:{deal_id}@{_millis(changed)}", data)


DEAL_WON_POLLED = TriggerSpec(
    key="hubspot.deal_won_polled",
    title="Deal won (HubSpot, read every few minutes)",
    title_es="Oportunidad ganada (HubSpot, leída cada pocos minutos)",
    description="HubSpot deals changed since the last poll, for accounts that cannot register "
    "webhooks; the flow reads each and goes on only when its stage counts as won.",
    kind=TriggerKind.POLL,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,  # the webhook's: a deal arriving both ways is one entity, one invoice
    business_keys=(("deal_ref", "deal_id"),),
    provider="hubspot",
    poll=poll,
    poll_every_seconds=300,
)


# Companies: created or changed in HubSpot → the customer in Puente.


def parse_company(payload: Any, _delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """Each company created or changed in the batch → one item (the last event of each
    company: a company created with its properties comes as several events at once); any
    other event → none."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise ValueError("a HubSpot webhook is a JSON array of events")
    latest: dict[str, ParsedItem] = {}
    for event in payload:
        if not isinstance(event, dict) or not _company_event(event):
            continue
        company = event.get("objectId")
        if company in (None, "") or event.get("eventId") in (None, ""):
            raise ValueError("a HubSpot company event has objectId and eventId")
        portal = event.get("portalId")
        data = {
            "company_id": str(company),
            "event_id": str(event["eventId"]),
            "occurred_at": _when(event.get("occurredAt")),
            "account_id": None if portal in (None, "") else str(portal),
        }
        latest.pop(str(company), None)  # keeps the batch's order, the last event each
        latest[str(company)] = ParsedItem(f"hubspot-company:{_event_key(event)}", data)
    return list(latest.values())


def _company_event(event: dict[str, Any]) -> bool:
    kind = event.get("subscriptionType")
    if kind in ("company.creation", "company.propertyChange"):
        return True
    generic = kind in ("object.creation", "object.propertyChange")
    return generic and str(event.get("objectTypeId")) == COMPANY_TYPE_ID


def company_entity(data: dict[str, Any]) -> Entity:
    return Entity("hubspot-company", str(data["company_id"]))


COMPANY_CHANGED = TriggerSpec(
    key="hubspot.company_changed",
    title="Company created or changed (HubSpot)",
    title_es="Empresa creada o modificada (HubSpot)",
    description="A HubSpot company was created or one of its properties changed; the flow "
    "reads it and keeps its customer (by NIF/CIF) in Puente.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_company_event.json",
    entity=company_entity,
    business_keys=(("company_ref", "company_id"),),
    provider="hubspot",
    verify=verify,  # the deal webhook's: one address, one client secret
    parse=parse_company,
)
