"""Won deals read from any JSON API that cannot send webhooks: polled through a connection.

Each poll asks for the deals newer than the newest already read (`?since=<cursor>`); the
first poll only records where the list stands, so switching a flow on bills nothing old.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from connector.errors import ConfigurationError, TransientError
from connector.spec import Entity, ParsedItem, PollContext, PollResult, TriggerKind, TriggerSpec


def poll(ctx: PollContext, cursor: Any) -> PollResult:
    """The deals past `cursor`, oldest first, and the newest one's time as the next cursor."""
    if ctx.http is None or ctx.connection is None:
        raise ConfigurationError("this trigger reads through a connection: choose one")
    path = str(ctx.config["path"])
    if cursor is not None:
        path += ("&" if "?" in path else "?") + urlencode({"since": cursor})
    answer = ctx.http.request("GET", path, connection=ctx.connection)
    if answer.status >= 500 or answer.status == 429:
        raise TransientError(f"GET {answer.url} answered {answer.status}")
    if answer.status >= 400:
        raise ConfigurationError(f"GET {answer.url} answered {answer.status}: check the path")
    field = str(ctx.config.get("items_field") or "items")
    rows = answer.body.get(field) if isinstance(answer.body, dict) else answer.body
    if not isinstance(rows, list):
        raise ConfigurationError(f"GET {answer.url} did not answer a list in {field!r}")
    order = str(ctx.config.get("cursor_field") or "won_at")
    deals = sorted(
        (row for row in rows if isinstance(row, dict) and row.get(order) is not None),
        key=lambda row: str(row[order]),
    )
    newer = [d for d in deals if cursor is None or str(d[order]) > str(cursor)]
    items = [ParsedItem(f"{d.get('deal_id')}@{d[order]}", _normalize(d)) for d in newer]
    return PollResult(items, str(newer[-1][order]) if newer else cursor)


def _normalize(deal: dict[str, Any]) -> dict[str, Any]:
    return deal if "source" in deal else {**deal, "source": "api"}


def entity(deal: dict[str, Any]) -> Entity | None:
    if deal.get("deal_id") is None:
        return None
    return Entity(str(deal.get("source") or "api"), str(deal["deal_id"]))


DEALS_POLLED = TriggerSpec(
    key="http.deals_polled",
    title="Deal won (read from a JSON API)",
    title_es="Oportunidad ganada (leída de una API JSON)",
    description="Won deals listed by a JSON API that sends no webhooks, read every few minutes.",
    kind=TriggerKind.POLL,
    output_schema="triggers/deal_won.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"),),
    config_schema="triggers/http.deals_polled.config.json",
    provider="http",
    poll=poll,
    poll_every_seconds=300,
)
