"""The built-in CRM record of won deals: what conversion and never-billed reports count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from database import insert_new
from invoicing import outbox
from invoicing.models import Deal


@dataclass(frozen=True)
class DealData:
    source: str
    external_ref: str
    won_at: datetime
    title: str | None = None
    owner_name: str | None = None
    owner_email: str | None = None
    campaign: str | None = None
    amount: Decimal | None = None
    currency: str = "EUR"
    customer_name: str | None = None
    customer_tax_id: str | None = None


def record_deal(session: Session, data: DealData) -> tuple[Deal, bool]:
    """Store a won deal once per (source, deal id); a repeat updates the stored one with what
    it says now (a corrected replay corrects the reports) and returns it."""
    values = {f: getattr(data, f) for f in DealData.__dataclass_fields__}
    deal = insert_new(session, Deal, values, unique=["source", "external_ref"])
    if deal is not None:
        outbox.emit(session, "deal.won", deal.id, _event(data))
        return deal, True
    existing = _find(session, data.source, data.external_ref)
    assert existing is not None  # the conflict was with it
    for name, value in values.items():
        if getattr(existing, name) != value:
            setattr(existing, name, value)
    session.flush()
    return existing, False


def _event(data: DealData) -> dict[str, Any]:
    """deal.won: the deal as it was recorded, with the CRM's id as `deal_id`."""
    return {
        "deal_id": data.external_ref,
        "source": data.source,
        "title": data.title,
        "amount": None if data.amount is None else str(data.amount),
        "currency": data.currency,
        "customer_name": data.customer_name,
        "customer_tax_id": data.customer_tax_id,
        "owner_name": data.owner_name,
        "owner_email": data.owner_email,
        "campaign": data.campaign,
        "won_at": data.won_at.isoformat(),
    }


def _find(session: Session, source: str, external_ref: str) -> Deal | None:
    return session.scalar(
        select(Deal).where(Deal.source == source, Deal.external_ref == external_ref)
    )
