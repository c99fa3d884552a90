"""The built-in CRM record of won deals: what conversion and never-billed reports count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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
    """Store a won deal once per (source, deal id); a repeat returns the stored one."""
    existing = _find(session, data.source, data.external_ref)
    if existing is not None:
        return existing, False
    deal = Deal(**{f: getattr(data, f) for f in DealData.__dataclass_fields__})
    try:
        with session.begin_nested():
            session.add(deal)
    except IntegrityError:
        existing = _find(session, data.source, data.external_ref)
        if existing is None:
            raise
        return existing, False
    return deal, True


def _find(session: Session, source: str, external_ref: str) -> Deal | None:
    return session.scalar(
        select(Deal).where(Deal.source == source, Deal.external_ref == external_ref)
    )
