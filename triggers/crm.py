"""The built-in CRM: an opportunity marked won on Puente's own pipeline starts the same flows
as a deal won in any CRM (its item is the normalized deal, schemas/triggers/deal_won.json)."""

from __future__ import annotations

from typing import Any

from connector.spec import DomainEvent, Entity, ParsedItem, TriggerKind, TriggerSpec


def won(event: DomainEvent) -> list[ParsedItem]:
    """The deal recorded with the event; its key is the event's (each "won" once)."""
    return [ParsedItem(f"outbox:{event.id}", dict(event.payload))]


def entity(deal: dict[str, Any]) -> Entity | None:
    return Entity(str(deal.get("source") or "puente"), str(deal["deal_id"]))


DEAL_WON = TriggerSpec(
    key="crm.deal_won",
    title="Opportunity won (built-in CRM)",
    title_es="Oportunidad ganada (CRM de Puente)",
    description="An opportunity of Puente's own pipeline marked won.",
    kind=TriggerKind.EVENT,
    output_schema="triggers/deal_won.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"), ("customer_tax_id", "customer.tax_id")),
    topics=("opportunity.won",),
    from_event=won,
)
