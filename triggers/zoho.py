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

from connector.errors import ConfigurationError
from connector.spec import Delivery, Entity, ParsedItem, PollContext, TriggerKind, TriggerSpec
from connector.standard_webhooks import SignatureError
from providers.zoho import api_url

EVENTS = ["Deals.edit", "Deals.create"]
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
    if "ids" not in payload and "deal_id" in payload and "event_id" in payload:
        # Already a deal event (a replay with a corrected trigger, the contract's example).
        keep = ("deal_id", "event_id", "occurred_at", "stage", "account_id")
        data = {k: payload[k] for k in keep if k in payload}
        return [ParsedItem(f"zoho:{payload['event_id']}", data)]
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
        "events": EVENTS,
        "notify_url": url,
        "channel_expiry": times["expires_at"],
        "token": notify_token,
    }
    _watch(ctx, "POST", entry, "enable")
    return {"channel_id": channel_id, **times}


def renew(ctx: PollContext, state: dict[str, Any]) -> dict[str, Any]:
    """Move the channel's expiry forward (PATCH keeps everything else as it is)."""
    times = _times()
    entry = {
        "channel_id": state["channel_id"],
        "events": EVENTS,
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
    entity=lambda data: Entity("zoho", str(data["deal_id"])),
    business_keys=(("deal_ref", "deal_id"),),
    provider="zoho",
    verify=verify,
    parse=parse,
    subscribe=subscribe,
    unsubscribe=unsubscribe,
    renew=renew,
)
