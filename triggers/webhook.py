"""Generic signed webhook: any system that signs with Standard Webhooks can report a won deal.

The body is one normalized deal (schemas/triggers/deal_won.json) or a JSON list of them.
"""

from __future__ import annotations

from typing import Any

from connector import standard_webhooks
from connector.spec import Delivery, Entity, ParsedItem, TriggerKind, TriggerSpec


class PayloadShapeError(ValueError):
    """The body is JSON but neither a deal object nor a list of them."""


def verify(delivery: Delivery, secret: str, now: int, tolerance: int) -> str:
    return standard_webhooks.verify(secret, delivery.headers, delivery.body, now, tolerance)


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    if isinstance(payload, dict):
        return [ParsedItem(delivery_id, _normalize(payload))]
    if isinstance(payload, list) and payload and all(isinstance(p, dict) for p in payload):
        return [ParsedItem(f"{delivery_id}#{i}", _normalize(p)) for i, p in enumerate(payload)]
    raise PayloadShapeError("the body must be a deal (a JSON object) or a non-empty list of deals")


def _normalize(deal: dict[str, Any]) -> dict[str, Any]:
    return deal if "source" in deal else {**deal, "source": "webhook"}


def entity(deal: dict[str, Any]) -> Entity | None:
    """The CRM deal: its source system and id."""
    if deal.get("deal_id") is None:
        return None
    return Entity(str(deal.get("source") or "webhook"), str(deal["deal_id"]))


DEAL_WON = TriggerSpec(
    key="webhook.deal_won",
    title="Deal won (signed webhook)",
    title_es="Oportunidad ganada (webhook firmado)",
    description="A deal marked won, sent by any system that signs with Standard Webhooks.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/deal_won.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"), ("customer_tax_id", "customer.tax_id")),
    verify=verify,
    parse=parse,
)


def parse_hours(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    if isinstance(payload, dict):
        return [ParsedItem(delivery_id, _normalize(payload))]
    if isinstance(payload, list) and payload and all(isinstance(p, dict) for p in payload):
        return [ParsedItem(f"{delivery_id}#{i}", _normalize(p)) for i, p in enumerate(payload)]
    raise PayloadShapeError("the body must be a ticket (a JSON object) or a non-empty list of them")


def ticket(data: dict[str, Any]) -> Entity | None:
    """The ticket: its source system and id (one invoice per ticket)."""
    if data.get("ticket_id") is None:
        return None
    return Entity(str(data.get("source") or "webhook"), f"ticket:{data['ticket_id']}")


HOURS_LOGGED = TriggerSpec(
    key="webhook.hours_logged",
    title="Ticket resolved with hours logged (signed webhook)",
    title_es="Incidencia resuelta con horas (webhook firmado)",
    description="A ticket resolved with its time entries, sent by a helpdesk or time tracker "
    "that signs with Standard Webhooks.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/hours_logged.json",
    entity=ticket,
    business_keys=(("ticket_ref", "ticket_id"), ("customer_tax_id", "customer.tax_id")),
    verify=verify,
    parse=parse_hours,
)
