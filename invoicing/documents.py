"""Quote → order → delivery note(s) → invoice: conversions that never bill a unit twice.

Every converted line points at the line it came from. What is left to convert of a line
into a kind of document is its quantity minus what its descendants of that kind already
hold (at any depth: an order line invoiced through its delivery notes counts as invoiced).
Cancelled documents hold nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from invoicing import outbox, totals
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    NotFoundError,
    Said,
    message_of,
)
from invoicing.models import DocumentKind, Invoice, InvoiceLine, InvoiceStatus
from invoicing.money import AmountError, line_amounts, to_decimal
from invoicing.verifactu import MADRID

# Which document may become which.
NEXT = {
    DocumentKind.QUOTE: (DocumentKind.ORDER, DocumentKind.INVOICE),
    DocumentKind.ORDER: (DocumentKind.DELIVERY_NOTE, DocumentKind.INVOICE),
    DocumentKind.DELIVERY_NOTE: (DocumentKind.INVOICE,),
}
SPANISH = {
    "quote": "presupuesto",
    "order": "pedido",
    "delivery_note": "albarán",
    "invoice": "factura",
}  # for the note printed on the new document
MAX_DEPTH = 3  # quote → order → delivery note → invoice


@dataclass(frozen=True)
class Take:
    """How much of one source line to carry over (all that is left when quantity is None)."""

    line_id: int
    quantity: object | None = None


def remaining(session: Session, lines: Sequence[InvoiceLine], kind: str) -> dict[int, Decimal]:
    """For each line, its quantity not yet carried into live documents of `kind`."""
    held = {line.id: Decimal(0) for line in lines}
    origin = {line.id: line.id for line in lines}  # descendant line → the line it descends from
    frontier = list(held)
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        rows = session.execute(
            select(InvoiceLine.id, InvoiceLine.source_line_id, InvoiceLine.quantity, Invoice.kind)
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(
                InvoiceLine.source_line_id.in_(frontier), Invoice.status != InvoiceStatus.CANCELLED
            )
        ).all()
        frontier = []
        for line_id, source_id, quantity, doc_kind in rows:
            assert source_id is not None  # selected by source_line_id
            root = origin[source_id]
            origin[line_id] = root
            if doc_kind == kind:
                held[root] += quantity
            else:
                frontier.append(line_id)
    return {line.id: line.quantity - held[line.id] for line in lines}


def convert(
    session: Session,
    source_ids: Sequence[int],
    to: str,
    takes: Sequence[Take] | None = None,
    notes: str | None = None,
    idempotency_key: str | None = None,
) -> Invoice:
    """Make a draft of kind `to` from one document, or from several delivery notes.

    Without `takes`, everything still left of every line is carried over. With an
    idempotency key, a repeat returns the draft the first call made.
    """
    if idempotency_key is not None:
        made = session.scalar(select(Invoice).where(Invoice.idempotency_key == idempotency_key))
        if made is not None:
            return made
    if not source_ids:
        raise InvalidDocumentError(
            [("from", Said("name the document(s) to convert", "elige qué documento convertir"))]
        )
    # Locked (in id order, so two conversions never wait for each other): a conversion
    # committed meanwhile counts in what is left to carry over.
    locked = {
        doc.id: doc
        for doc in session.scalars(
            select(Invoice).where(Invoice.id.in_(source_ids)).order_by(Invoice.id).with_for_update()
        )
    }
    sources = [locked.get(i) for i in source_ids]
    missing = [i for i, doc in zip(source_ids, sources, strict=True) if doc is None]
    if missing:
        ids = ", ".join(map(str, missing))
        raise NotFoundError(
            Said(
                f"document(s) {ids} do not exist",
                f"No existe el documento {ids}: puede que se haya borrado."
                if len(missing) == 1
                else f"No existen los documentos {ids}: puede que se hayan borrado.",
            )
        )
    docs = [doc for doc in sources if doc is not None]
    _check_sources(docs, to)
    lines = [line for doc in docs for line in doc.lines]
    left = remaining(session, lines, to)
    by_id = {line.id: line for line in lines}
    wanted = _wanted(takes, by_id, left)
    carried: list[InvoiceLine] = []
    for position, (line, quantity) in enumerate(wanted, start=1):
        amounts = line_amounts(quantity, line.unit_price, line.discount_percent)
        carried.append(
            InvoiceLine(
                position=position,
                sku=line.sku,
                product_id=line.product_id,
                description=line.description,
                quantity=quantity,
                unit_price=line.unit_price,
                discount_percent=line.discount_percent,
                tax_rate=line.tax_rate,
                exemption_cause=line.exemption_cause,
                withholding_rate=line.withholding_rate,
                service=line.service,
                source_line_id=line.id,
                gross=amounts.gross,
                discount=amounts.discount,
                base=amounts.base,
            )
        )
    first = docs[0]
    # The general discount agreed on the source carries over, like its prices.
    document = totals.checked_totals(
        carried,
        "",  # totalled as before conversion; issuing checks the invoice's own limits
        discount=first.discount_percent,
        equivalence_surcharge=first.customer.equivalence_surcharge,
    )
    names = ", ".join(f"{SPANISH[doc.kind]} {doc.number or doc.id}" for doc in docs)
    draft = Invoice(
        kind=to,
        status=InvoiceStatus.DRAFT,
        idempotency_key=idempotency_key,
        customer_id=first.customer_id,
        currency=first.currency,
        # Only the first document of a kind for a deal carries the deal reference.
        source=None,
        external_ref=None,
        converted_from_id=first.id,
        notes=notes or f"Procede de {names}",
        discount_percent=first.discount_percent,
        # Invoiced from delivery notes: the goods went out on their dates (the last one when
        # several), which the invoice states when it is issued on another day.
        operation_date=max(_made_on(doc) for doc in docs)
        if to == DocumentKind.INVOICE and first.kind == DocumentKind.DELIVERY_NOTE
        else None,
        lines=carried,
    )
    totals.fill(draft, document)
    session.add(draft)
    session.flush()
    if to == DocumentKind.INVOICE:
        outbox.drafted(session, draft, converted_from=[doc.id for doc in docs])
    return draft


def _made_on(doc: Invoice) -> date:
    """The day a document (a delivery note) was made, in Spain."""
    return doc.issue_date or doc.created_at.astimezone(MADRID).date()


def _check_sources(docs: list[Invoice], to: str) -> None:
    kinds = {doc.kind for doc in docs}
    if to not in set(DocumentKind):
        raise InvalidDocumentError(
            [
                (
                    "to",
                    Said(
                        f"must be one of {', '.join(DocumentKind)}",
                        f"debe ser uno de estos: {', '.join(DocumentKind)}",
                    ),
                )
            ]
        )
    for doc in docs:
        allowed = NEXT.get(DocumentKind(doc.kind), ())
        if to not in allowed:
            what = doc.kind.replace("_", " ")
            article = "an" if what[0] in "aeiou" else "a"
            into = " or ".join(a.replace("_", " ") for a in allowed) or "nothing else"
            becomes = (
                f"un {SPANISH[doc.kind]} se convierte en "
                f"{' o '.join(SPANISH[a] for a in allowed)}, no en {SPANISH.get(to, to)}"
                if allowed
                else f"una {SPANISH[doc.kind]} no se convierte en ningún otro documento"
            )
            raise InvalidDocumentError(
                [("to", Said(f"{article} {what} becomes {into}, not {to}", becomes))]
            )
        if doc.status == InvoiceStatus.CANCELLED:
            raise DocumentStateError(
                Said(f"{doc.kind} {doc.id} is cancelled", "Está anulado: no se convierte.")
            )
    if len(docs) > 1:
        if kinds != {DocumentKind.DELIVERY_NOTE} or to != DocumentKind.INVOICE:
            raise InvalidDocumentError(
                [
                    (
                        "from",
                        Said(
                            "only delivery notes are invoiced together",
                            "Solo los albaranes se facturan juntos: convierte los demás "
                            "documentos de uno en uno.",
                        ),
                    )
                ]
            )
        if len({doc.customer_id for doc in docs}) > 1:
            raise InvalidDocumentError(
                [
                    (
                        "from",
                        Said(
                            "the delivery notes are for different customers",
                            "Los albaranes son de clientes distintos: factúralos por separado.",
                        ),
                    )
                ]
            )
        if len({doc.discount_percent for doc in docs}) > 1:
            raise InvalidDocumentError(
                [
                    (
                        "from",
                        Said(
                            "the delivery notes have different general discounts: invoice apart",
                            "Los albaranes tienen descuentos generales distintos: factúralos "
                            "por separado.",
                        ),
                    )
                ]
            )


def _wanted(
    takes: Sequence[Take] | None, by_id: dict[int, InvoiceLine], left: dict[int, Decimal]
) -> list[tuple[InvoiceLine, Decimal]]:
    if takes is None:
        wanted = [(by_id[i], q) for i, q in left.items() if q != 0]
        if not wanted:
            raise DocumentStateError(
                Said(
                    "everything in it has been converted already",
                    "Ya se ha convertido todo lo que tenía: no queda nada por convertir.",
                )
            )
        return wanted
    errors: list[tuple[str, str]] = []
    wanted = []
    for n, take in enumerate(takes):
        where = f"lines[{n}]"
        line = by_id.get(take.line_id)
        if line is None:
            errors.append(
                (
                    f"{where}.line_id",
                    Said(
                        f"line {take.line_id} is not in these documents",
                        f"la línea {take.line_id} no está en estos documentos",
                    ),
                )
            )
            continue
        try:
            quantity = left[line.id] if take.quantity is None else to_decimal(take.quantity)
        except AmountError as exc:
            errors.append((f"{where}.quantity", message_of(exc)))
            continue
        if quantity <= 0 or quantity > left[line.id]:
            errors.append(
                (
                    f"{where}.quantity",
                    Said(
                        f"must be more than 0 and at most the {left[line.id].normalize()} "
                        f"left of line {line.position} ({line.description})",
                        f"debe ser más de 0 y como mucho lo que queda de la línea "
                        f"{line.position} ({line.description}): {left[line.id].normalize()}",
                    ),
                )
            )
            continue
        wanted.append((line, quantity))
    if errors:
        raise InvalidDocumentError(errors)
    if not wanted:
        raise InvalidDocumentError(
            [("lines", Said("take at least one line", "elige al menos una línea"))]
        )
    return wanted
