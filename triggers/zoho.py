"""Zoho CRM: a deal's stage changed, from a notification channel of the Notifications API.

Zoho posts JSON carrying only ids ({"server_time", "module", "ids", "affected_fields",
"operation", "channel_id", "token", …}); its only proof of origin is the `token` Puente set on
the channel, compared here in constant time. One item per deal whose Stage changed (our own
write-backs of invoice fields change no stage, so they start nothing); the flow reads the deal
itself through the API, where "won" is decided.

Puente keeps the channel: enabled (POST /actions/watch) while a flow uses the trigger,
renewed before it expires (PATCH, a day at most ahead on API v2), disabled (DELETE) with the
last flow.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

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
from providers.zoho import api_url

EVENTS = ["Deals.edit", "Deals.create"]
ACCOUNT_EVENTS = ["Accounts.edit", "Accounts.create"]
STAGE = "Stage"
# Zoho API v2 keeps a channel for a day at most (an hour when asked for more): ask for a bit
# less, and have lifecycle.sync renew it halfway (renew_at), so a few failed turns never let
# it lapse.
CHANNEL_LIFE = timedelta(hours=23)
RENEW_AFTER = timedelta(hours=12)


def _body(delivery: Delivery) -> dict[str, Any]:
    try:
        body = json.loads(delivery.body or b"{}")
    except ValueError:
        raise SignatureError("the notification is not JSON: it does not come from Zoho") from None
    if not isinstance(body, dict):
        raise SignatureError("the notification is not a JSON object: it does not come from Zoho")
    return body


def verify(delivery: Delivery, secret: str, now: int, tolerance: int) -> str:
    """The channel's token as Zoho echoes it, and a recent server_time; the delivery id is
    the channel and its server time."""
    expected = str(json.loads(secret or "{}").get("notify_token") or "")
    if not expected:
        raise SignatureError(
            "this Zoho CRM connection has no notify_token: set one in its secret (Connections)"
        )
    body = _body(delivery)
    token = body.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(
        token.encode("utf-8"), expected.encode("utf-8")
    ):
        raise SignatureError(
            "the notification's token is not this connection's notify_token: it does not come "
            "from this Zoho CRM channel"
        )
    try:
        sent = int(body["server_time"]) // 1000  # Zoho sends milliseconds
    except (KeyError, TypeError, ValueError):
        raise SignatureError("the notification has no server_time") from None
    if abs(now - sent) > tolerance:
        raise SignatureError(
            f"the notification's server_time is {abs(now - sent)} s away from now (more than "
            f"{tolerance} s): refused as a replay"
        )
    return f"{body.get('channel_id')}:{body['server_time']}"


def _changed(payload: dict[str, Any], deal_id: str) -> list[str] | None:
    """The fields the notification says changed on the deal; None when it does not say.

    Zoho gives `affected_fields` as [{"<id>": ["Stage", …]}, …] (one entry per record), or as
    plain field names for all of them."""
    affected = payload.get("affected_fields")
    if not isinstance(affected, list) or not affected:
        return None
    if all(isinstance(name, str) for name in affected):
        return list(affected)
    for entry in affected:
        if isinstance(entry, dict) and deal_id in entry:
            fields = entry[deal_id]
            return [str(f) for f in fields] if isinstance(fields, list) else None
    return []  # the notification names the changes of other records only


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """One item per deal created, or updated with its Stage among the changed fields."""
    if not isinstance(payload, dict):
        raise ValueError("a Zoho CRM notification is a JSON object")
    if payload.get("module") != "Deals" or payload.get("operation") not in ("insert", "update"):
        return []
    occurred = None
    if isinstance(payload.get("server_time"), int | str):
        try:
            stamp = int(payload["server_time"]) / 1000
            occurred = datetime.fromtimestamp(stamp, UTC).isoformat()
        except (ValueError, OverflowError):
            occurred = None
    channel, when = payload.get("channel_id"), payload.get("server_time")
    items = []
    for raw in payload.get("ids") or []:
        deal_id = str(raw)
        if payload["operation"] == "update":
            changed = _changed(payload, deal_id)
            if changed is not None and STAGE not in changed:
                continue
        items.append(
            ParsedItem(
                f"zoho:{channel}:{when}:{deal_id}",
                {
                    "deal_id": deal_id,
                    "event_id": f"{channel}:{when}:{deal_id}",
                    "occurred_at": occurred,
                    "stage": None,  # the notification carries ids only
                    "account_id": None,
                },
            )
        )
    return items


def entity(data: dict[str, Any]) -> Entity:
    return Entity("zoho", str(data["deal_id"]))


def _when(server_time: Any) -> str | None:
    """Zoho's server_time (milliseconds since 1970) as ISO 8601 UTC."""
    try:
        return datetime.fromtimestamp(int(server_time) / 1000, UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# The channel's lifecycle at Zoho.


def _times() -> dict[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "expires_at": (now + CHANNEL_LIFE).isoformat(),
        "renew_at": (now + RENEW_AFTER).isoformat(),
    }


def _watch(ctx: PollContext, method: str, entry: dict[str, Any], what: str) -> dict[str, Any]:
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    answer = ctx.http.request(
        method,
        api_url(view, "actions/watch"),
        connection=ctx.connection,
        payload={"watch": [entry]},
    )
    body = answer.body if isinstance(answer.body, dict) else {}
    result = (body.get("watch") or [{}])[0]
    if answer.status >= 400 or result.get("status") != "success":
        raise ConfigurationError(
            f"Zoho CRM refused to {what} the notification channel (HTTP {answer.status}: "
            f"{result.get('code') or body.get('code')} {result.get('message') or ''}); "
            "check that the refresh token has the ZohoCRM.notifications.ALL scope"
        )
    return result


def subscribe(ctx: PollContext, url: str) -> dict[str, Any]:
    """Enable a channel of our own for deal edits, posting to the connection's address."""
    return _enable(ctx, url, EVENTS)


def subscribe_accounts(ctx: PollContext, url: str) -> dict[str, Any]:
    """Enable another channel of our own for accounts created or edited, to the same address
    with the same token."""
    return _enable(ctx, url, ACCOUNT_EVENTS)


def _enable(ctx: PollContext, url: str, events: list[str]) -> dict[str, Any]:
    assert ctx.http is not None and ctx.connection is not None
    notify_token = ctx.secret.get("notify_token")
    if not notify_token:
        raise ConfigurationError(
            f"connection {ctx.connection!r} has no notify_token: set one in its secret so "
            "Zoho's notifications can be told from forgeries"
        )
    channel_id = str(10**12 + secrets.randbelow(9 * 10**12))  # Zoho wants a long
    times = _times()
    entry: dict[str, Any] = {
        "channel_id": channel_id,
        "events": events,
        "notify_url": url,
        "channel_expiry": times["expires_at"],
        "token": notify_token,
    }
    _watch(ctx, "POST", entry, "enable")
    return {"channel_id": channel_id, **times}


def renew(ctx: PollContext, state: dict[str, Any]) -> dict[str, Any]:
    """Move the channel's expiry forward (PATCH keeps everything else as it is)."""
    return _renew(ctx, state, EVENTS)


def renew_accounts(ctx: PollContext, state: dict[str, Any]) -> dict[str, Any]:
    """The accounts channel's renewal, as the deals one."""
    return _renew(ctx, state, ACCOUNT_EVENTS)


def _renew(ctx: PollContext, state: dict[str, Any], events: list[str]) -> dict[str, Any]:
    times = _times()
    entry = {
        "channel_id": state["channel_id"],
        "events": events,
        "channel_expiry": times["expires_at"],
    }
    _watch(ctx, "PATCH", entry, "renew")
    return times


def unsubscribe(ctx: PollContext, state: dict[str, Any]) -> None:
    """Disable the channel (one already expired at Zoho is gone: nothing to do)."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    answer = ctx.http.request(
        "DELETE",
        api_url(view, f"actions/watch?channel_ids={state['channel_id']}"),
        connection=ctx.connection,
    )
    if answer.status >= 400 and answer.status != 404:
        raise ConfigurationError(
            f"Zoho CRM refused to disable notification channel {state['channel_id']} "
            f"(HTTP {answer.status})"
        )


DEAL_WON = TriggerSpec(
    key="zoho.deal_won",
    title="Deal won (Zoho CRM)",
    title_es="Oportunidad ganada (Zoho CRM)",
    description="A Zoho CRM deal whose stage changed; the flow reads it and goes on when the "
    "stage counts as won.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"),),
    provider="zoho",
    verify=verify,
    parse=parse,
    subscribe=subscribe,
    unsubscribe=unsubscribe,
    renew=renew,
)


# Polling: for accounts that cannot enable notification channels (no such scope, say).

POLL_PAGE = 200  # the most Zoho gives in one page
POLL_PAGES = 10  # a bound on one poll (API v2 lists 2,000 records at most): the rest waits
SINCE_EVER = "1970-01-01T00:00:00+00:00"  # the cursor of an account that had no deals at all
MODIFIED = "Modified_Time"


def poll(ctx: PollContext, cursor: Any) -> PollResult:
    """The deals changed since `cursor` (GET /Deals sorted by Modified_Time, oldest first,
    with Zoho's If-Modified-Since header), one item per deal and change, and the newest
    change as the next cursor.

    The first poll (no cursor) only asks where the account stands (its most recently modified
    deal) and starts a second past it; polling.py fires nothing for it. Zoho's times have
    whole seconds and If-Modified-Since gives what changed after it, so each poll asks from a
    second before the cursor and keeps what changed at the cursor or later: a change read
    twice has the same key (the deal and its Modified_Time) and starts nothing again. Zoho
    answers 304 (or 204) when nothing changed. Deals already invoiced (the invoice link field
    set) are left out: writing the invoice back changes the deal, and must not start it
    again."""
    if ctx.http is None or ctx.connection is None:
        raise ConfigurationError("this trigger reads Zoho CRM through a connection: choose one")
    view = ctx.http.view(ctx.connection)
    linked = CrmSettings.of(view).invoice_url_field
    # `fields`: optional on API v2, required from v3 on (base_url may name another version).
    fields = ",".join(("Stage", MODIFIED, linked))
    if cursor is None:
        query = {"fields": fields, "sort_by": MODIFIED, "sort_order": "desc", "per_page": 1}
        body = _list(ctx, query, None)
        rows = [r for r in body.get("data") or [] if isinstance(r, dict) and _time(r)]
        if not rows:
            return PollResult([], SINCE_EVER)
        newest = _time(rows[0])
        assert newest is not None
        return PollResult([], (newest + timedelta(seconds=1)).isoformat())
    since = _cursor(cursor)
    items: list[ParsedItem] = []
    newest_seen = since
    for page in range(1, POLL_PAGES + 1):
        query = {
            "fields": fields,
            "sort_by": MODIFIED,
            "sort_order": "asc",
            "page": page,
            "per_page": POLL_PAGE,
        }
        body = _list(ctx, query, since - timedelta(seconds=1))
        for row in body.get("data") or []:
            when = _time(row) if isinstance(row, dict) else None
            if when is None or when < since or row.get("id") in (None, ""):
                continue
            newest_seen = max(newest_seen, when)
            if _linked(row, linked):
                continue
            items.append(_polled(row, when, view.account_id))
        if not (body.get("info") or {}).get("more_records"):
            break
    return PollResult(items, newest_seen.isoformat())


def _list(ctx: PollContext, query: dict[str, Any], since: datetime | None) -> dict[str, Any]:
    """GET /Deals; 429 and 5xx are raised by the outbound client (the poll waits for its
    next turn with its cursor unchanged), any other refusal says what to check; 304 and 204
    (nothing changed, nothing there) are an empty page."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    headers = {"If-Modified-Since": since.isoformat()} if since is not None else None
    answer = ctx.http.request(
        "GET",
        api_url(view, f"Deals?{urlencode(query)}"),
        connection=ctx.connection,
        headers=headers,
    )
    if answer.status in (204, 304):
        return {}
    if answer.status in (401, 403):
        raise ConfigurationError(
            f"Zoho CRM refused to list deals (HTTP {answer.status}): check the connection's "
            "refresh token and that it has the ZohoCRM.modules.deals.READ scope"
        )
    if answer.status >= 400:
        raise ConfigurationError(
            f"Zoho CRM refused to list deals (HTTP {answer.status}: {str(answer.body)[:300]})"
        )
    return answer.body if isinstance(answer.body, dict) else {}


def _time(row: dict[str, Any]) -> datetime | None:
    """A record's Modified_Time ("2026-11-27T10:15:00+01:00") in UTC, to the second."""
    stamp = row.get(MODIFIED)
    if not isinstance(stamp, str) or not stamp.strip():
        return None
    try:
        when = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def _cursor(cursor: Any) -> datetime:
    when = _time({MODIFIED: cursor})
    if when is None:
        raise ConfigurationError(f"the poll's cursor {cursor!r} is not a time: reset the flow")
    return when


def _linked(row: dict[str, Any], field: str) -> bool:
    """Whether the deal has the invoice link field set (by its API name, in any case)."""
    value = row.get(field)
    if value is None:
        value = next((v for k, v in row.items() if k.lower() == field.lower()), None)
    return value not in (None, "")


def _polled(row: dict[str, Any], when: datetime, org: str | None) -> ParsedItem:
    deal_id = str(row["id"])
    stage = row.get("Stage")
    stamp = when.isoformat()
    data = {
        "deal_id": deal_id,
        "event_id": f"{deal_id}@{stamp}",
        "occurred_at": stamp,
        "stage": None if stage in (None, "") else str(stage),
        "account_id": org,
    }
    return ParsedItem(f"zoho-poll:{deal_id}@{stamp}", data)


DEAL_WON_POLLED = TriggerSpec(
    key="zoho.deal_won_polled",
    title="Deal won (Zoho CRM, read every few minutes)",
    title_es="Oportunidad ganada (Zoho CRM, leída cada pocos minutos)",
    description="Zoho CRM deals changed since the last poll, for accounts that cannot enable "
    "notification channels; the flow reads each and goes on only when its stage counts as won.",
    kind=TriggerKind.POLL,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,  # the webhook's: a deal arriving both ways is one entity, one invoice
    business_keys=(("deal_ref", "deal_id"),),
    provider="zoho",
    poll=poll,
    poll_every_seconds=300,
)


# Accounts: created or edited in Zoho CRM → the customer in Puente.


def parse_account(payload: Any, _delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """One item per account created or edited; notifications of other modules (the deals
    channel posts to the same address) → none."""
    if not isinstance(payload, dict):
        raise ValueError("a Zoho CRM notification is a JSON object")
    if payload.get("module") != "Accounts" or payload.get("operation") not in ("insert", "update"):
        return []
    channel, when = payload.get("channel_id"), payload.get("server_time")
    items = []
    for raw in payload.get("ids") or []:
        account_id = str(raw)
        items.append(
            ParsedItem(
                f"zoho-account:{channel}:{when}:{account_id}",
                {
                    "company_id": account_id,
                    "event_id": f"{channel}:{when}:{account_id}",
                    "occurred_at": _when(when),
                    "account_id": None,
                },
            )
        )
    return items


def account_entity(data: dict[str, Any]) -> Entity:
    return Entity("zoho-account", str(data["company_id"]))


ACCOUNT_CHANGED = TriggerSpec(
    key="zoho.account_changed",
    title="Account created or changed (Zoho CRM)",
    title_es="Cuenta creada o modificada (Zoho CRM)",
    description="A Zoho CRM account was created or edited; the flow reads it and keeps its "
    "customer (by NIF/CIF) in Puente.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_company_event.json",
    entity=account_entity,
    business_keys=(("company_ref", "company_id"),),
    provider="zoho",
    verify=verify,  # the deal trigger's: one address, the same notify_token
    parse=parse_account,
    subscribe=subscribe_accounts,
    unsubscribe=unsubscribe,
    renew=renew_accounts,
)
