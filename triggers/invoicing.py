"""Invoicing events: what happens in the invoicing core (an invoice issued, paid, cancelled; a
customer created) starts flows, e.g. paid → "Cobrado" on the CRM deal.

Fed from the core's outbox (connector.events): one item per event, exactly once.
"""

from __future__ import annotations

from typing import Any

from connector.spec import DomainEvent, Entity, ParsedItem, TriggerKind, TriggerSpec


def item(event: DomainEvent) -> list[ParsedItem]:
    """The event's payload, with its id and time: the item's key is the event's."""
    data = {"event_id": event.id, "occurred_at": event.created_at, **event.payload}
    return [ParsedItem(f"outbox:{event.id}", data)]


def invoice(data: dict[str, Any]) -> Entity | None:
    return None if data.get("invoice_id") is None else Entity("invoice", str(data["invoice_id"]))


def customer(data: dict[str, Any]) -> Entity | None:
    return None if data.get("customer_id") is None else Entity("customer", str(data["customer_id"]))


# An issued invoice is found by its number; the id until it has one.
INVOICE_KEYS = (
    ("invoice_ref", "number"),
    ("invoice_ref", "invoice_id"),
    ("deal_ref", "external_ref"),
)


def _invoice_event(topic: str, title: str, title_es: str, description: str) -> TriggerSpec:
    """A trigger on an invoice's event, published as the public event of the same name."""
    name = topic.replace(".", "_")
    return TriggerSpec(
        key=f"invoicing.{name}",
        title=title,
        title_es=title_es,
        description=description,
        kind=TriggerKind.EVENT,
        output_schema=f"triggers/{name}.json",
        entity=invoice,
        business_keys=INVOICE_KEYS,
        topics=(topic,),
        from_event=item,
        public_event=topic,
    )


INVOICE_DRAFTED = _invoice_event(
    "invoice.drafted",
    "Invoice drafted",
    "Factura en borrador creada",
    "A draft invoice was created (from a won deal, a conversion or a rectification), waiting "
    "for review.",
)
INVOICE_ISSUED = _invoice_event(
    "invoice.issued",
    "Invoice issued",
    "Factura emitida",
    "An invoice got its number, date and VERI*FACTU record.",
)
INVOICE_PAID = _invoice_event(
    "invoice.paid", "Invoice paid", "Factura cobrada", "An issued invoice is paid in full."
)
INVOICE_CANCELLED = _invoice_event(
    "invoice.cancelled",
    "Invoice cancelled",
    "Factura anulada",
    "An invoice issued in error was cancelled (VERI*FACTU anulación).",
)
# What the CRM's payment status field says at each step of the invoice's life.
PAYMENT_STATUS = {"invoice.issued": ("issued", "Pendiente"), "invoice.paid": ("paid", "Cobrado")}


def status_item(event: DomainEvent) -> list[ParsedItem]:
    """An invoice issued or paid, with the status to write back to the CRM deal."""
    status, payment = PAYMENT_STATUS[event.topic]
    [parsed] = item(event)
    return [
        ParsedItem(parsed.dedup_key, {**parsed.data, "status": status, "payment_status": payment})
    ]


INVOICE_STATUS = TriggerSpec(
    key="invoicing.invoice_status",
    title="Invoice issued or paid",
    title_es="Factura emitida o cobrada",
    description="An invoice was issued (payment pending) or paid in full: what a CRM deal shows.",
    kind=TriggerKind.EVENT,
    output_schema="triggers/invoice_status.json",
    entity=invoice,
    business_keys=INVOICE_KEYS,
    topics=tuple(PAYMENT_STATUS),
    from_event=status_item,
)
CUSTOMER_CREATED = TriggerSpec(
    key="invoicing.customer_created",
    title="Customer created",
    title_es="Cliente creado",
    description="A new customer was created in the invoicing core.",
    kind=TriggerKind.EVENT,
    output_schema="triggers/customer_created.json",
    entity=customer,
    business_keys=(("customer_tax_id", "tax_id"),),
    topics=("customer.created",),
    from_event=item,
    public_event="customer.created",
)


def deal(data: dict[str, Any]) -> Entity | None:
    return Entity(str(data["source"]), str(data["deal_id"]))


DEAL_RECORDED = TriggerSpec(
    key="invoicing.deal_recorded",
    title="Won deal recorded",
    title_es="Oportunidad ganada registrada",
    description="A won deal was recorded in Puente (from a CRM, Zapier, Make, the API or the "
    "built-in CRM): what the won → invoiced reports count.",
    kind=TriggerKind.EVENT,
    output_schema="triggers/deal_recorded.json",
    entity=deal,
    business_keys=(("deal_ref", "deal_id"), ("customer_tax_id", "customer_tax_id")),
    topics=("deal.won",),
    from_event=item,
    public_event="deal.won",
)
