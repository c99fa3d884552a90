"""A document's totals as stored: IVA, recargo de equivalencia, IRPF and the general discount.

Every document (quote, order, delivery note, invoice) is totalled here from its lines, its
general discount and whether its customer is in recargo de equivalencia, so that drafts,
conversions, rectifications and issuing all store the same amounts for the same lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.orm import Session

from invoicing.errors import InvalidDocumentError, Said, message_of
from invoicing.models import Invoice, InvoiceLine, InvoiceTax, InvoiceType, InvoiceWithholding
from invoicing.money import (
    MAX_INTEGER_DIGITS,
    AmountError,
    Totals,
    TotalsLine,
    document_totals,
    to_decimal,
    too_many_decimals,
)

SIMPLIFIED_LIMIT = Decimal(3000)
DISCOUNT_DECIMALS = 4
BETWEEN_0_AND_100 = Said("must be between 0 and 100", "debe estar entre 0 y 100 (es un porcentaje)")


def discount_percent(value: object, field: str = "discount_percent") -> Decimal:
    """A general discount as sent: 0 to 100, at most four decimals (None: no discount)."""
    if value is None:
        return Decimal(0)
    try:
        percent = to_decimal(value, field)
    except AmountError as exc:
        raise InvalidDocumentError([(field, message_of(exc))]) from None
    exponent = percent.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > DISCOUNT_DECIMALS:
        raise InvalidDocumentError([(field, too_many_decimals(DISCOUNT_DECIMALS))])
    if not Decimal(0) <= percent <= Decimal(100):
        raise InvalidDocumentError([(field, BETWEEN_0_AND_100)])
    return percent


def line_totals(lines: Sequence[InvoiceLine]) -> list[TotalsLine]:
    return [
        TotalsLine(
            line.base, line.tax_rate, line.exemption_cause, line.withholding_rate, line.service
        )
        for line in lines
    ]


def checked_totals(
    lines: Sequence[InvoiceLine],
    invoice_type: str,
    *,
    discount: Decimal = Decimal(0),
    equivalence_surcharge: bool = False,
) -> Totals:
    """The document's totals, refusing what no complete or simplified invoice may total."""
    totals = document_totals(
        line_totals(lines), discount_percent=discount, equivalence_surcharge=equivalence_surcharge
    )
    if invoice_type == InvoiceType.SIMPLIFIED and totals.total > SIMPLIFIED_LIMIT:
        raise InvalidDocumentError(
            [
                (
                    "invoice_type",
                    Said(
                        f"a simplified invoice may total at most {SIMPLIFIED_LIMIT} € with IVA "
                        "(400 € outside art. 4.2 RD 1619/2012); issue a complete one",
                        f"una factura simplificada puede sumar como mucho {SIMPLIFIED_LIMIT} € "
                        "con IVA (400 € fuera del art. 4.2 del RD 1619/2012): haz una factura "
                        "completa",
                    ),
                )
            ]
        )
    if totals.total < 0 and invoice_type in (InvoiceType.COMPLETE, InvoiceType.SIMPLIFIED):
        raise InvalidDocumentError(
            [
                (
                    "lines",
                    Said(
                        f"the invoice total would be negative ({totals.total}); "
                        "a refund needs a rectifying invoice",
                        f"el total de la factura saldría negativo ({totals.total}): para "
                        "devolver dinero, haz una rectificativa",
                    ),
                )
            ]
        )
    largest = max([abs(line.gross) for line in lines] + [abs(totals.gross), abs(totals.total)])
    if largest >= LARGEST_AMOUNT:  # what an amount column holds, and any real invoice
        raise InvalidDocumentError(
            [
                (
                    "lines",
                    Said(
                        f"the amounts come to {largest}, more than an invoice may: at most "
                        f"{LARGEST_AMOUNT - Decimal('0.01')}; check the quantities and prices",
                        "Los importes suman más de lo que admite una factura (como mucho "
                        "999.999.999.999,99): revisa las cantidades y los precios.",
                    ),
                )
            ]
        )
    return totals


# A line or a total of twelve digits before the point at most, as amounts are read
# (money.MAX_INTEGER_DIGITS): quantity × price could otherwise overflow NUMERIC(18, 2).
LARGEST_AMOUNT = Decimal(10) ** MAX_INTEGER_DIGITS


def totals_of(invoice: Invoice, lines: Sequence[InvoiceLine] | None = None) -> Totals:
    """What the invoice's lines total today, for its customer and general discount."""
    return checked_totals(
        invoice.lines if lines is None else lines,
        invoice.invoice_type,
        discount=invoice.discount_percent,
        equivalence_surcharge=invoice.customer.equivalence_surcharge,
    )


def tax_rows(totals: Totals) -> list[InvoiceTax]:
    return [
        InvoiceTax(
            rate=t.rate,
            base=t.base,
            amount=t.amount,
            exemption_cause=t.exemption,
            surcharge_rate=t.surcharge_rate,
            surcharge_amount=t.surcharge_amount,
        )
        for t in totals.taxes
    ]


def withholding_rows(totals: Totals) -> list[InvoiceWithholding]:
    return [
        InvoiceWithholding(rate=w.rate, base=w.base, amount=w.amount) for w in totals.withholdings
    ]


def set_amounts(invoice: Invoice, totals: Totals) -> None:
    """Write the totals on the document (its tax and withholding rows are the caller's)."""
    invoice.discount_total = totals.discount
    invoice.base_total = totals.base
    invoice.tax_total = totals.tax
    invoice.surcharge_total = totals.surcharge
    invoice.total = totals.total
    invoice.withholding_total = totals.withholding


def fill(invoice: Invoice, totals: Totals) -> None:
    """Totals and rows of a document that is not stored yet."""
    set_amounts(invoice, totals)
    invoice.taxes = tax_rows(totals)
    invoice.withholdings = withholding_rows(totals)


def _stored(invoice: Invoice) -> tuple[object, ...]:
    return (
        invoice.discount_total,
        invoice.base_total,
        invoice.tax_total,
        invoice.surcharge_total,
        invoice.total,
        invoice.withholding_total,
        [
            (t.rate, t.exemption_cause, t.base, t.amount, t.surcharge_rate, t.surcharge_amount)
            for t in invoice.taxes
        ],
        [(w.rate, w.base, w.amount) for w in invoice.withholdings],
    )


def _computed(totals: Totals) -> tuple[object, ...]:
    return (
        totals.discount,
        totals.base,
        totals.tax,
        totals.surcharge,
        totals.total,
        totals.withholding,
        [
            (t.rate, t.exemption, t.base, t.amount, t.surcharge_rate, t.surcharge_amount)
            for t in totals.taxes
        ],
        [(w.rate, w.base, w.amount) for w in totals.withholdings],
    )


def replace(session: Session, invoice: Invoice, totals: Totals) -> bool:
    """Store new totals on a stored document; False (and nothing written) when unchanged."""
    if _stored(invoice) == _computed(totals):
        return False
    invoice.taxes.clear()
    invoice.withholdings.clear()
    session.flush()  # the old rows go before the new ones take their (unique) places
    invoice.taxes.extend(tax_rows(totals))
    invoice.withholdings.extend(withholding_rows(totals))
    set_amounts(invoice, totals)
    session.flush()
    return True


def refresh(session: Session, invoice: Invoice) -> bool:
    """Total a stored document again from its lines, discount and customer; True if it moved."""
    return replace(session, invoice, totals_of(invoice))
