"""Issue a draft: number, date and VERI*FACTU record, atomically; issued invoices never change."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import chain, exports, fields, outbox, totals
from invoicing import verifactu as vf
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    NotFoundError,
    Said,
    message_of,
)
from invoicing.models import (
    DocumentKind,
    Invoice,
    InvoiceStatus,
    InvoiceType,
    Issuer,
    Series,
    snapshot,
)
from invoicing.numbering import format_number, next_serial
from invoicing.tax_ids import TaxIdError, parse_tax_id

MADRID = ZoneInfo("Europe/Madrid")


def today() -> date:
    """The current day in Spain: invoices, payments and their dates follow the users' calendar."""
    return utcnow().astimezone(MADRID).date()


PURPOSE = {
    InvoiceType.COMPLETE: "ordinary",
    InvoiceType.SIMPLIFIED: "simplified",
    **{t: "rectifying" for t in ("R1", "R2", "R3", "R4", "R5")},
}
PURPOSE_ES = {
    "ordinary": "ordinarias",
    "simplified": "simplificadas",
    "rectifying": "rectificativas",
}


@dataclass(frozen=True)
class Issued:
    invoice: Invoice
    issued_now: bool  # False when it was already issued (a repeated call changes nothing)


def default_issuer(session: Session, lock: bool = False) -> Issuer:
    query = select(Issuer).order_by(Issuer.id).limit(1)
    issuer = session.scalar(query.with_for_update() if lock else query)
    if issuer is None:
        raise DocumentStateError(
            Said(
                "no issuer is configured: set our company's NIF, name and address first "
                "(PUT /api/v1/issuer)",
                "Falta configurar tu empresa: pon su NIF, nombre y dirección en Ajustes antes "
                "de emitir.",
            )
        )
    return issuer


def issue(
    session: Session,
    invoice_id: int,
    *,
    series_code: str | None = None,
    issue_date: date | None = None,
    now: datetime | None = None,
) -> Issued:
    """Give the draft its number and date and chain its VERI*FACTU record, in one transaction."""
    # Lock the issuer first: its VERI*FACTU chain admits one new link at a time. The record's
    # time is read after the lock, so the chain's order and its timestamps always agree.
    issuer = default_issuer(session, lock=True)
    now = now or utcnow()
    invoice = session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    if invoice is None:
        raise NotFoundError(
            Said(
                f"invoice {invoice_id} does not exist",
                f"La factura {invoice_id} no existe: puede que se haya borrado.",
            )
        )
    if invoice.kind != DocumentKind.INVOICE:  # only invoices are fiscal: numbered and chained
        raise DocumentStateError(
            Said(
                f"document {invoice_id} is a {invoice.kind.replace('_', ' ')}, not an invoice: "
                "convert it into an invoice, then issue that",
                f"El documento {invoice_id} no es una factura: conviértelo en factura y emite esa.",
            )
        )
    if invoice.status != InvoiceStatus.DRAFT:
        if invoice.number is not None:
            return Issued(invoice, False)
        raise DocumentStateError(
            Said(
                f"invoice {invoice_id} is {invoice.status}; only drafts are issued",
                f"La factura {invoice_id} ya no es un borrador: solo se emiten borradores.",
            )
        )
    series = _series(session, issuer, invoice.invoice_type, series_code)
    today = now.astimezone(MADRID).date()
    when = issue_date or today
    if when > today:
        raise InvalidDocumentError(
            [
                (
                    "issue_date",
                    Said(
                        f"{when} is in the future",
                        f"{when:%d/%m/%Y} es una fecha futura: una factura se emite con la "
                        "fecha de hoy o una anterior.",
                    ),
                )
            ]
        )
    last = session.scalar(
        select(func.max(Invoice.issue_date)).where(Invoice.series_id == series.id)
    )
    if last is not None and when < last:
        raise InvalidDocumentError(
            [
                (
                    "issue_date",
                    Said(
                        f"{when} is before {last}, the last invoice date in series "
                        f"{series.code}: numbers must follow dates",
                        f"{when:%d/%m/%Y} es anterior a {last:%d/%m/%Y}, la fecha de la última "
                        f"factura de la serie {series.code}: los números siguen a las fechas.",
                    ),
                )
            ]
        )
    if invoice.rectifies is not None and invoice.rectifies.status == InvoiceStatus.CANCELLED:
        # Checked again now: the invoice may have been cancelled since this draft was made.
        raise DocumentStateError(
            Said(
                f"invoice {invoice.rectifies.number} was cancelled after this rectifying draft "
                "was made: there is nothing left to rectify; delete the draft",
                f"La factura {invoice.rectifies.number} se anuló después de hacer esta "
                "rectificativa: ya no hay nada que rectificar; borra el borrador.",
            )
        )
    _check_addressee(invoice)
    _check_territory(issuer, invoice)
    _check_simplified(issuer, invoice)
    # The customer's fiscal data as of today decides the recargo de equivalencia: a draft made
    # before its customer was marked (or unmarked) is totalled again before it is numbered.
    totals.refresh(session, invoice)
    serial = next_serial(session, series, when.year)
    invoice.issuer = issuer
    invoice.series = series
    invoice.serial = serial
    invoice.number = format_number(series, when.year, serial)
    invoice.issue_date = when
    invoice.due_date = when + timedelta(days=invoice.customer.payment_days)
    invoice.issued_at = now
    invoice.parties = {"issuer": snapshot(issuer), "customer": snapshot(invoice.customer)}
    invoice.status = InvoiceStatus.ISSUED
    session.flush()
    record = chain.append_alta(session, issuer, invoice, now)
    _check_documents(issuer, invoice, record.xml)
    outbox.emit(
        session,
        "invoice.issued",
        invoice.id,
        {
            "invoice_id": invoice.id,
            "number": invoice.number,
            "issue_date": when.isoformat(),
            "total": str(invoice.total),
            "amount_due": str(invoice.amount_due),
            "due_date": invoice.due_date.isoformat(),
            "external_ref": invoice.external_ref,
            "source": invoice.source,
            "huella": record.huella,
        },
    )
    return Issued(invoice, True)


SIMPLIFIED_ORDINARY_LIMIT = Decimal(400)  # art. 4.1 RD 1619/2012, IVA included


def _check_simplified(issuer: Issuer, invoice: Invoice) -> None:
    """A simplified invoice above 400 € only for a business art. 4.2 covers (never above
    3,000 €, refused with the totals)."""
    if invoice.invoice_type != InvoiceType.SIMPLIFIED or issuer.simplified_art_4_2:
        return
    if invoice.total > SIMPLIFIED_ORDINARY_LIMIT:
        raise InvalidDocumentError(
            [
                (
                    "invoice_type",
                    Said(
                        f"a simplified invoice may total at most {SIMPLIFIED_ORDINARY_LIMIT} € "
                        f"with IVA, this one {invoice.total} €: issue a complete invoice, or "
                        "say in the issuer's settings that art. 4.2 RD 1619/2012 covers the "
                        "business (up to 3,000 €)",
                        f"Una factura simplificada puede sumar como mucho "
                        f"{SIMPLIFIED_ORDINARY_LIMIT} € con IVA y esta suma {invoice.total} €: "
                        "haz una factura completa o, si tu actividad está en el art. 4.2 del RD "
                        "1619/2012 (comercio minorista, hostelería, transporte...), márcalo en "
                        "Ajustes (hasta 3.000 €).",
                    ),
                )
            ]
        )


def _check_documents(issuer: Issuer, invoice: Invoice, record_xml: str) -> None:
    """Every document an issued invoice needs can be produced, checked before it is numbered
    for good (the transaction rolls back otherwise): its VERI*FACTU record valid against
    SuministroLR.xsd and, for a complete invoice, its Facturae valid against its XSD."""
    try:
        vf.validate(chain.wrap(issuer, [record_xml]))
        # Facturae is for complete invoices in euros (another currency is refused as Facturae
        # with its own message, and the invoice is still valid).
        if invoice.invoice_type not in (InvoiceType.SIMPLIFIED, InvoiceType.R5) and (
            invoice.currency == "EUR"
        ):
            exports.facturae_xml(invoice)
    except InvalidDocumentError:
        raise
    except ValueError as exc:  # VerifactuError, FacturaeError: what the XSDs or checks refuse
        raise DocumentStateError(
            Said(
                f"invoice {invoice.id} is not issued: one of its documents could not be "
                f"produced ({exc})",
                f"La factura {invoice.id} no se ha emitido: uno de sus documentos (registro "
                "VERI*FACTU o Facturae) no se podría generar con estos datos. Revisa los datos "
                "del cliente y las líneas, o avisa a soporte con este número de factura.",
            )
        ) from exc


def _check_addressee(invoice: Invoice) -> None:
    """A complete invoice (F1, and R1–R4 that correct one) names its customer's address."""
    if invoice.invoice_type in (InvoiceType.SIMPLIFIED, "R5"):
        return
    customer = invoice.customer
    missing = fields.address_missing(
        customer.street, customer.postal_code, customer.city, customer.country
    )
    problems: list[tuple[str, str]] = []
    for name in missing:
        english, spanish = fields.ADDRESS_PARTS[name]
        said = Said(
            f"a complete invoice names the customer's address: {customer.name} has no "
            f"{english}; add it to the customer, then issue",
            f"Una factura completa lleva la dirección del cliente: falta {spanish} de "
            f"{customer.name}; añade ese dato en la ficha del cliente y vuelve a emitirla.",
        )
        problems.append((f"customer.{name}", said))
    if problems:
        raise InvalidDocumentError(problems)


# Spanish territories outside the IVA (art. 3 LIVA), by the province part of the postal code:
# Canarias has the IGIC, Ceuta and Melilla the IPSI.
_OUTSIDE_IVA = {"35": "Canarias", "38": "Canarias", "51": "Ceuta", "52": "Melilla"}


def territory_outside_iva(country: str | None, postal_code: str | None) -> str | None:
    """Canarias, Ceuta or Melilla for an address there; None elsewhere."""
    if (country or "ES") != "ES":
        return None
    return _OUTSIDE_IVA.get((postal_code or "").strip()[:2])


def _check_territory(issuer: Issuer, invoice: Invoice) -> None:
    """No IVA is charged where the IVA does not apply; IGIC and IPSI invoices are not made."""
    here = territory_outside_iva(issuer.country, issuer.postal_code)
    if here is not None:
        raise DocumentStateError(
            Said(
                f"the issuer is in {here}, where invoices carry IGIC or IPSI instead of IVA; "
                "Puente does not make IGIC or IPSI invoices",
                f"Tu empresa está en {here}, donde las facturas llevan IGIC o IPSI y no IVA: "
                "Puente todavía no hace facturas con IGIC ni IPSI.",
            )
        )
    customer = invoice.customer
    there = territory_outside_iva(customer.country, customer.postal_code)
    if there is not None and any(line.tax_rate > 0 for line in invoice.lines):
        raise InvalidDocumentError(
            [
                (
                    "lines",
                    Said(
                        f"{customer.name} is in {there}, outside the IVA: no IVA may be "
                        "charged; invoice the lines as exempt (e.g. E2, exports of goods) or "
                        "not subject, as the operation is",
                        f"{customer.name} está en {there}, fuera del ámbito del IVA: no se le "
                        "puede cobrar IVA. Pon las líneas al 0 % como exentas (p. ej. E2, "
                        "envío de bienes) o no sujetas, según sea la operación.",
                    ),
                )
            ]
        )


def _series(session: Session, issuer: Issuer, invoice_type: str, code: str | None) -> Series:
    purpose = PURPOSE[InvoiceType(invoice_type)]
    query = select(Series).where(Series.issuer_id == issuer.id)
    if code is not None:
        series = session.scalar(query.where(Series.code == code))
        if series is None:
            raise InvalidDocumentError(
                [
                    (
                        "series",
                        Said(
                            f"there is no series {code!r}",
                            f"no hay ninguna serie «{code}»: elige una de las de tu empresa",
                        ),
                    )
                ]
            )
        if series.purpose != purpose:
            raise InvalidDocumentError(
                [
                    (
                        "series",
                        Said(
                            f"series {code!r} is for {series.purpose} invoices, not {purpose} ones",
                            f"la serie «{code}» es para facturas "
                            f"{PURPOSE_ES.get(series.purpose, series.purpose)}, no para "
                            f"{PURPOSE_ES[purpose]}: elige otra serie",
                        ),
                    )
                ]
            )
        return series
    series = session.scalar(query.where(Series.purpose == purpose).order_by(Series.id).limit(1))
    if series is None:
        raise DocumentStateError(
            Said(
                f"no {purpose} series is configured for {issuer.tax_id}",
                f"{issuer.tax_id} no tiene ninguna serie para facturas {PURPOSE_ES[purpose]}: "
                "vuelve a guardar los datos de tu empresa en Ajustes para crearla.",
            )
        )
    return series


@dataclass(frozen=True)
class IssuerData:
    tax_id: str
    name: str
    street: str
    postal_code: str
    city: str
    province: str
    country: str = "ES"
    email: str | None = None
    iban: str | None = None
    sif_producer_tax_id: str | None = None
    sif_producer_name: str | None = None
    sif_installation: str = "1"
    simplified_art_4_2: bool = False


ISSUER_FIELDS = tuple(IssuerData.__dataclass_fields__)  # tax_id first

DEFAULT_SERIES = (
    ("F", "ordinary", "Facturas"),
    ("R", "rectifying", "Facturas rectificativas"),
    ("S", "simplified", "Facturas simplificadas"),
)


def configure_issuer(session: Session, data: IssuerData) -> Issuer:
    """Set our company's fiscal data; the first time, also its three default series."""
    errors: list[tuple[str, str]] = []
    try:
        tax_id = parse_tax_id(data.tax_id, "ES")
    except TaxIdError as exc:
        errors.append(("tax_id", message_of(exc)))
    errors += [
        (name, Said("must not be empty", "no puede quedar vacío"))
        for name in ("name", "street", "postal_code", "city", "province")
        if not str(getattr(data, name) or "").strip()
    ]
    country = (data.country or "").strip().upper()
    checks = {
        "country": fields.country_problem(country),
        "postal_code": fields.postal_code_problem(data.postal_code, country)
        if str(data.postal_code or "").strip()
        else None,
        "email": fields.email_problem(data.email or None),
        "iban": fields.iban_problem(data.iban or None),
        "simplified_art_4_2": None
        if isinstance(data.simplified_art_4_2, bool)
        else Said("must be true or false", "debe ser sí o no (true o false)"),
    }
    errors += [(name, problem) for name, problem in checks.items() if problem is not None]
    if errors:
        raise InvalidDocumentError(errors)
    data = replace(
        data,
        country=country,
        iban=fields.normal_iban(data.iban) if data.iban else None,
        email=(data.email or "").strip() or None,
    )
    issuer = session.scalar(select(Issuer).order_by(Issuer.id).limit(1))
    if issuer is not None and issuer.tax_id != tax_id.value:
        issued = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.issuer_id == issuer.id)
        )
        if issued:
            raise DocumentStateError(
                Said(
                    f"{issuer.tax_id} has issued invoices and a VERI*FACTU chain: its NIF "
                    "cannot change",
                    f"{issuer.tax_id} ya ha emitido facturas con su cadena VERI*FACTU: su NIF "
                    "no puede cambiar.",
                )
            )
    if issuer is None:
        issuer = Issuer(tax_id=tax_id.value)
        session.add(issuer)
    issuer.tax_id = tax_id.value
    for name in ISSUER_FIELDS[1:]:  # everything but the tax id, set above
        value = getattr(data, name)
        setattr(issuer, name, value.strip() if isinstance(value, str) else value)
    session.flush()
    existing = {
        s.code for s in session.scalars(select(Series).where(Series.issuer_id == issuer.id))
    }
    for code, purpose, description in DEFAULT_SERIES:
        if code not in existing:
            session.add(
                Series(issuer_id=issuer.id, code=code, purpose=purpose, description=description)
            )
    session.flush()
    return issuer
