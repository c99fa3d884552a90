"""Payments: partial or full; the invoice is paid when nothing is left; never more than owed.

What the customer owes is the amount due: the invoice total less the IRPF it withholds (and
pays to the AEAT itself), not the invoice total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import issuing, outbox
from invoicing.errors import DocumentStateError, InvalidDocumentError, NotFoundError, Said
from invoicing.models import Invoice, InvoiceStatus, Payment
from invoicing.money import AmountError, to_decimal


@dataclass(frozen=True)
class Recorded:
    payment: Payment
    invoice: Invoice
    created: bool  # False when this idempotency key was used before


def record_payment(
    session: Session,
    invoice_id: int,
    amount: object,
    paid_on: date | None = None,
    *,
    method: str | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Recorded:
    """Record money received for an issued invoice; paid today (in Spain) unless dated."""
    if idempotency_key is not None:
        found = _by_key(session, idempotency_key)
        if found is not None:
            return found
    invoice = session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    if invoice is None:
        raise NotFoundError(
            Said(
                f"invoice {invoice_id} does not exist",
                f"La factura {invoice_id} no existe: puede que se haya borrado.",
            )
        )
    if invoice.status != InvoiceStatus.ISSUED:
        raise DocumentStateError(
            Said(
                f"invoice {invoice_id} is {invoice.status}: payments are recorded on issued "
                "invoices",
                "Los cobros se registran en facturas emitidas y pendientes de cobro.",
            )
        )
    try:
        value = to_decimal(amount, "amount")
    except AmountError as exc:
        raise InvalidDocumentError(
            [("amount", Said(str(exc), "no es un importe: escríbelo así: 1.500,50"))]
        ) from None
    if value <= 0 or value != value.quantize(value.__class__("0.01")):
        raise InvalidDocumentError(
            [
                (
                    "amount",
                    Said(
                        "must be a positive amount in euros and cents",
                        "debe ser un importe positivo en euros y céntimos (p. ej. 1.500,50)",
                    ),
                )
            ]
        )
    outstanding = invoice.outstanding
    if value > outstanding:
        raise InvalidDocumentError(
            [
                (
                    "amount",
                    Said(
                        f"{value} is more than the {outstanding} still owed on {invoice.number}",
                        f"{value} es más de lo que queda por cobrar de {invoice.number}: "
                        f"{outstanding}",
                    ),
                )
            ]
        )
    payment = Payment(
        invoice_id=invoice.id,
        amount=value,
        paid_on=paid_on or issuing.today(),
        method=method,
        reference=reference,
        idempotency_key=idempotency_key,
    )
    try:
        with session.begin_nested():
            session.add(payment)
    except IntegrityError:
        found = _by_key(session, idempotency_key) if idempotency_key else None
        if found is None:
            raise
        return found
    invoice.paid_total = invoice.paid_total + value
    if invoice.paid_total == invoice.amount_due:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = utcnow()
        outbox.emit(
            session,
            "invoice.paid",
            invoice.id,
            {
                "invoice_id": invoice.id,
                "number": invoice.number,
                "total": str(invoice.total),
                "amount_due": str(invoice.amount_due),
                "paid_on": payment.paid_on.isoformat(),
                "external_ref": invoice.external_ref,
                "source": invoice.source,
            },
        )
    return Recorded(payment, invoice, True)


def _by_key(session: Session, key: str) -> Recorded | None:
    payment = session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if payment is None:
        return None
    return Recorded(payment, session.get_one(Invoice, payment.invoice_id), False)
