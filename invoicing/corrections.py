"""Corrections of issued invoices: cancellation (anulación) and rectifying invoices (R1–R5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import chain, outbox, totals
from invoicing.errors import DocumentStateError, InvalidDocumentError, NotFoundError, Said
from invoicing.issuing import default_issuer
from invoicing.models import Invoice, InvoiceStatus, InvoiceType, VerifactuRecord
from invoicing.service import LineData, prepare_lines
from invoicing.settings import InvoicingSettings

RECTIFYING = ("R1", "R2", "R3", "R4", "R5")


def cancel(session: Session, invoice_id: int, reason: str, now: datetime | None = None) -> Invoice:
    """Cancel an issued invoice with a chained RegistroAnulacion; repeating changes nothing.

    For an invoice issued in error (never a real operation). Correcting a real operation
    takes a rectifying invoice instead.
    """
    if not reason.strip():
        raise InvalidDocumentError(
            [("reason", Said("say why the invoice is cancelled", "di por qué se anula la factura"))]
        )
    issuer = default_issuer(session, lock=True)
    invoice = session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    if invoice is None:
        raise NotFoundError(
            Said(
                f"invoice {invoice_id} does not exist",
                f"La factura {invoice_id} no existe: puede que se haya borrado.",
            )
        )
    if invoice.status == InvoiceStatus.CANCELLED:
        return invoice
    if invoice.status == InvoiceStatus.DRAFT:
        raise DocumentStateError(
            Said(
                f"invoice {invoice_id} is a draft: delete or edit it instead",
                "Es un borrador: bórralo o cámbialo en vez de anularlo.",
            )
        )
    if invoice.paid_total > 0:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.number} has payments recorded: correct it with a rectifying "
                "invoice instead of cancelling it",
                f"La factura {invoice.number} tiene cobros registrados: corrígela con una "
                "rectificativa en vez de anularla.",
            )
        )
    rectified_by = session.scalars(
        select(Invoice.number).where(
            Invoice.rectifies_id == invoice.id, Invoice.number.is_not(None)
        )
    ).all()
    if rectified_by:
        numbers = ", ".join(str(n) for n in rectified_by)
        raise DocumentStateError(
            Said(
                f"invoice {invoice.number} has been rectified by {numbers}: cancelling it would "
                "leave that correction pointing at nothing; correct it with another rectifying "
                "invoice instead",
                f"La factura {invoice.number} ya tiene una rectificativa emitida ({numbers}): si "
                "se anulara, esa corrección quedaría sin factura a la que corregir. Corrígela "
                "con otra rectificativa en vez de anularla.",
            )
        )
    now = now or utcnow()
    chain.append_anulacion(session, issuer, invoice, now)
    invoice.status = InvoiceStatus.CANCELLED
    invoice.cancelled_at = now
    invoice.notes = (invoice.notes + "\n" if invoice.notes else "") + f"Anulada: {reason.strip()}"
    outbox.emit(
        session,
        "invoice.cancelled",
        invoice.id,
        {
            "invoice_id": invoice.id,
            "number": invoice.number,
            "reason": reason.strip(),
            "external_ref": invoice.external_ref,
            "source": invoice.source,
        },
    )
    return invoice


CORRECTABLE = (chain.REJECTED, chain.ACCEPTED_WITH_ERRORS)  # the AEAT's refusals


def correct_record(
    session: Session,
    record_id: int,
    now: datetime | None = None,
    settings: InvoicingSettings | None = None,
) -> VerifactuRecord:
    """Correct a record the AEAT refused, once what it objected to has been fixed (usually the
    customer's NIF or name): a new record of the same invoice, chained and queued.

    * An alta rejected (Incorrecto) or accepted with errors: its subsanación, built from the
      invoice as it is now, with Subsanacion S (and RechazoPrevio S when it was rejected).
    * An anulación rejected: the anulación again, with RechazoPrevio S (and SinRegistroPrevio
      S when the AEAT never received the alta it cancels).

    The invoice's number, date, type and totals cannot change (they are in the huella): a
    mistake there takes a rectifying invoice. The refused record becomes ``corrected``.
    """
    settings = settings if settings is not None else InvoicingSettings.from_env()
    issuer = default_issuer(session, lock=True)
    record = session.get(VerifactuRecord, record_id, with_for_update=True)
    if record is None or record.issuer_id != issuer.id:
        raise NotFoundError(
            Said(
                f"VERI*FACTU record {record_id} does not exist",
                f"El registro VERI*FACTU {record_id} no existe.",
            )
        )
    if record.status not in CORRECTABLE:
        raise DocumentStateError(
            Said(
                f"record {record_id} of invoice {record.num_serie} is {record.status}: only "
                "records the AEAT rejected or accepted with errors are corrected",
                f"El registro {record_id} de la factura {record.num_serie} no tiene nada que "
                "corregir: solo se corrigen los que la AEAT rechazó o aceptó con errores.",
            )
        )
    if not settings.sends_records:
        raise DocumentStateError(
            Said(
                "this installation does not send records to the AEAT (no VERI*FACTU): a "
                "correction could not be sent; set PUENTE_VERIFACTU_MODE=verifactu first",
                "Esta instalación no envía registros a la AEAT (modo no VERI*FACTU): la "
                "corrección no se podría enviar. Pon PUENTE_VERIFACTU_MODE=verifactu antes.",
            )
        )
    invoice = session.get(Invoice, record.invoice_id)
    assert invoice is not None
    newest = chain.current(session, invoice, record.kind)
    if newest is not None and newest.id != record.id:
        raise DocumentStateError(
            Said(
                f"record {record_id} was already corrected by record {newest.id}",
                f"El registro {record_id} ya se corrigió con el registro {newest.id}.",
            )
        )
    now = now or utcnow()
    if record.kind == "anulacion":
        return chain.append_anulacion(session, issuer, invoice, now, settings, corrects=record)
    if invoice.status == InvoiceStatus.CANCELLED:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.number} is cancelled: its alta is not corrected",
                f"La factura {invoice.number} está anulada: su registro de alta ya no se corrige.",
            )
        )
    return chain.append_alta(session, issuer, invoice, now, settings, corrects=record)


def rectify(
    session: Session,
    invoice_id: int,
    *,
    invoice_type: str,
    method: str,
    reason: str,
    lines: Sequence[LineData] | None = None,
    idempotency_key: str | None = None,
) -> Invoice:
    """Draft a rectifying invoice for an issued one; it is issued like any draft (series R).
    With an idempotency key, a repeat returns the draft the first call made.

    method "S" (substitution): the lines are the corrected invoice in full (default: the
    invoice as it stands: its lines and those of the rectifications by differences issued
    since). method "I" (differences): the lines are the differences, negative
    where amounts go down.
    """
    if idempotency_key is not None:
        made = session.scalar(select(Invoice).where(Invoice.idempotency_key == idempotency_key))
        if made is not None:
            return made
    original = session.get(Invoice, invoice_id)
    if original is None:
        raise NotFoundError(
            Said(
                f"invoice {invoice_id} does not exist",
                f"La factura {invoice_id} no existe: puede que se haya borrado.",
            )
        )
    errors: list[tuple[str, str]] = []
    if invoice_type not in RECTIFYING:
        errors.append(
            (
                "invoice_type",
                Said(
                    f"must be one of {', '.join(RECTIFYING)}",
                    f"debe ser uno de estos: {', '.join(RECTIFYING)}",
                ),
            )
        )
    elif (invoice_type == "R5") != (original.invoice_type == InvoiceType.SIMPLIFIED):
        errors.append(
            (
                "invoice_type",
                Said(
                    "R5 rectifies simplified invoices, and only R5 does",
                    "las facturas simplificadas se rectifican con R5, y R5 solo rectifica "
                    "simplificadas",
                ),
            )
        )
    if method not in ("S", "I"):
        errors.append(
            (
                "method",
                Said(
                    "must be S (substitution) or I (differences)",
                    "debe ser S (por sustitución) o I (por diferencias)",
                ),
            )
        )
    if not reason.strip():
        errors.append(("reason", Said("say what is being corrected", "di qué se corrige")))
    if method == "I" and not lines:
        errors.append(
            (
                "lines",
                Said(
                    "a rectification by differences needs the lines that differ",
                    "una rectificación por diferencias necesita las líneas que cambian",
                ),
            )
        )
    if errors:
        raise InvalidDocumentError(errors)
    if original.number is None or original.status == InvoiceStatus.CANCELLED:
        raise DocumentStateError(
            Said(
                f"invoice {invoice_id} is {original.status}: only issued invoices are rectified",
                "Solo se rectifican facturas emitidas (ni borradores ni anuladas).",
            )
        )
    if lines is None:
        lines = [
            LineData(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                tax_rate=line.tax_rate,
                discount_percent=line.discount_percent,
                sku=line.sku,
                exemption_cause=line.exemption_cause,
                withholding_rate=line.withholding_rate,
                service=line.service,
            )
            for invoice in chain.standing_of(original)
            for line in invoice.lines
        ]
    prepared = prepare_lines(session, lines, original.source)
    # The lines are priced like the original's: its general discount applies to them too.
    amounts = totals.checked_totals(
        prepared,
        invoice_type,
        discount=original.discount_percent,
        equivalence_surcharge=original.customer.equivalence_surcharge,
    )
    draft = Invoice(
        kind="invoice",
        status=InvoiceStatus.DRAFT,
        invoice_type=invoice_type,
        customer_id=original.customer_id,
        currency=original.currency,
        source=None,  # a correction is not the deal's invoice: no (source, deal) uniqueness
        external_ref=None,
        rectifies_id=original.id,
        rectification_method=method,
        rectification_reason=reason.strip(),
        discount_percent=original.discount_percent,
        idempotency_key=idempotency_key,
        lines=prepared,
    )
    totals.fill(draft, amounts)
    session.add(draft)
    session.flush()
    outbox.drafted(session, draft, rectifies=original.number)
    return draft
