"""Write domain events in the caller's transaction: they exist exactly when the change does."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from invoicing.models import Invoice, OutboxEvent

TOPICS = frozenset(
    {
        "customer.created",
        "deal.won",
        "invoice.drafted",
        "invoice.issued",
        "invoice.paid",
        "invoice.cancelled",
        "opportunity.won",
    }
)


_EMIT = insert(cast(Table, OutboxEvent.__table__))


def emit(session: Session, topic: str, subject_id: int, payload: dict[str, Any]) -> None:
    """One INSERT now (nobody needs the row as an object: the ORM's flush of it cost more)."""
    if topic not in TOPICS:
        raise ValueError(f"unknown event topic {topic!r}")
    session.execute(_EMIT, {"topic": topic, "subject_id": subject_id, "payload": payload})


def drafted(session: Session, invoice: Invoice, **extra: Any) -> None:
    """invoice.drafted, with what every consumer needs and what is particular to its origin."""
    emit(
        session,
        "invoice.drafted",
        invoice.id,
        {
            "invoice_id": invoice.id,
            "customer_id": invoice.customer_id,
            "total": str(invoice.total),
            **extra,
        },
    )


def unpublished(session: Session, limit: int) -> list[OutboxEvent]:
    """The oldest events not handed on yet, locked for this transaction (other consumers
    skip them on PostgreSQL; SQLite has one writer at a time anyway)."""
    return list(
        session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def mark_published(session: Session, ids: list[int], when: datetime) -> None:
    """Handed on: in the same transaction as what the consumer made of them."""
    if ids:
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=when)
        )
