"""Push triggers: what Zapier, Make or any program sends with an API key.

`POST /api/v1/triggers/<name>/events` (web.api.push) feeds every enabled flow on trigger
`api.<name>`. The body is one item or a JSON list of them; an `Idempotency-Key` makes a repeat
a no-op. Items are about the API's own namespace of deals and customers: the sender's ids,
never mixed with a CRM connection's.
"""

from __future__ import annotations

from typing import Any

from connector.spec import Entity, ParsedItem, TriggerKind, TriggerSpec

SOURCE = "api"


class PayloadShapeError(ValueError):
    """The body is JSON but neither an object nor a non-empty list of objects."""


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    if isinstance(payload, dict):
        return [ParsedItem(delivery_id, payload)]
    if isinstance(payload, list) and payload and all(isinstance(p, dict) for p in payload):
        return [ParsedItem(f"{delivery_id}#{i}", p) for i, p in enumerate(payload)]
    raise PayloadShapeError("the body must be a JSON object or a non-empty list of objects")


def deal(data: dict[str, Any]) -> Entity | None:
    """The deal by the sender's id: one invoice per deal sent through the API."""
    return None if data.get("deal_id") is None else Entity(SOURCE, str(data["deal_id"]))


def customer(data: dict[str, Any]) -> Entity | None:
    """The customer by its tax id (one customer per NIF, as in the invoicing core)."""
    tax_id = (data.get("customer") or {}).get("tax_id")
    return None if tax_id is None else Entity(f"{SOURCE}-customer", str(tax_id))


DEAL_WON = TriggerSpec(
    key="api.deal_won",
    title="Deal won (Zapier, Make or API)",
    title_es="Oportunidad ganada (Zapier, Make o API)",
    description="A won deal sent by Zapier, Make or a program with an API key.",
    kind=TriggerKind.PUSH,
    output_schema="triggers/deal_won.json",
    entity=deal,
    business_keys=(("deal_ref", "deal_id"), ("customer_tax_id", "customer.tax_id")),
    parse=parse,
)
CUSTOMER_CREATED = TriggerSpec(
    key="api.customer_created",
    title="Customer created elsewhere (Zapier, Make or API)",
    title_es="Cliente creado en otra aplicación (Zapier, Make o API)",
    description="A customer created in another application, sent by Zapier, Make or a program "
    "with an API key.",
    kind=TriggerKind.PUSH,
    output_schema="triggers/customer_pushed.json",
    entity=customer,
    business_keys=(("customer_tax_id", "customer.tax_id"),),
    parse=parse,
)
