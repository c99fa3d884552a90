"""The issuer's VERI*FACTU chain: one record per issue or cancellation, each hashing the last."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from invoicing import facturae as fe
from invoicing import verifactu as vf
from invoicing.catalog import NOT_SUBJECT, REVERSE_CHARGE
from invoicing.errors import DocumentStateError, Said
from invoicing.models import (
    Customer,
    Invoice,
    InvoiceStatus,
    InvoiceTax,
    InvoiceType,
    Issuer,
    VerifactuRecord,
)
from invoicing.settings import (
    NO_VERIFACTU,
    SYSTEM_ID,
    SYSTEM_NAME,
    SYSTEM_VERSION,
    VERIFACTU,
    InvoicingSettings,
)

# A record's status (VerifactuRecord.status); invoicing.aeat describes the submission ones.
PENDING = "pending"  # queued for the AEAT
FAILED = "failed"
ACCEPTED = "accepted"
ACCEPTED_WITH_ERRORS = "accepted_with_errors"
REJECTED = "rejected"
KEPT = "kept"  # no VERI*FACTU: kept with the chain, never sent
CORRECTED = "corrected"  # the AEAT refused it and a newer record of the invoice corrects it


def system_for(issuer: Issuer, settings: InvoicingSettings) -> vf.SystemInfo:
    """Our SistemaInformatico, from the installation's settings.

    The producer is PUENTE_SIF_PRODUCER_NAME/NIF; unset (only allowed without VERI*FACTU), the
    business running its own installation stands as its producer. Puente works in both modes
    (TipoUsoPosibleSoloVerifactu N) and for one obligado per installation (MultiOT N).
    """
    return vf.SystemInfo(
        producer_name=settings.sif_producer_name or issuer.sif_producer_name or issuer.name,
        producer_nif=settings.sif_producer_nif or issuer.sif_producer_tax_id or issuer.tax_id,
        system_name=SYSTEM_NAME,
        system_id=SYSTEM_ID,
        version=SYSTEM_VERSION,
        installation_number=settings.sif_installation or issuer.sif_installation or "1",
        solo_verifactu=False,
        multi_ot=False,
        multiples_ot=False,
    )


def record_signer(settings: InvoicingSettings) -> fe.SigningCredentials | None:
    """The certificate that signs records kept without VERI*FACTU (the business's own,
    PUENTE_FACTURAE_P12); None in VERI*FACTU mode (the AEAT receives them) or without one."""
    path = settings.facturae_p12
    if settings.sends_records or path is None:
        return None
    if not path.is_file():
        raise DocumentStateError(
            Said(
                f"PUENTE_FACTURAE_P12 names {path}, which is not a file: records cannot be signed",
                f"PUENTE_FACTURAE_P12 apunta a {path}, que no existe: sin el certificado no se "
                "pueden firmar los registros. Corrige la ruta o quita la variable.",
            )
        )
    return _credentials(str(path), path.stat().st_mtime, settings.facturae_p12_password)


@lru_cache(maxsize=2)
def _credentials(path: str, _mtime: float, password: str | None) -> fe.SigningCredentials:
    return fe.load_pkcs12(Path(path).read_bytes(), password)  # ~40 ms: once per file version


def _settings(settings: InvoicingSettings | None) -> InvoicingSettings:
    """The settings given, else the environment's (the core is also used without a runtime)."""
    return settings if settings is not None else InvoicingSettings.from_env()


def _check_mode(
    session: Session, issuer: Issuer, now: datetime, settings: InvoicingSettings
) -> None:
    """Once records went to the AEAT this year, VERI*FACTU stays on until the year ends."""
    if settings.sends_records:
        return
    year = now.astimezone(vf.MADRID).year
    sent = session.scalar(
        select(VerifactuRecord.id)
        .where(
            VerifactuRecord.issuer_id == issuer.id,
            VerifactuRecord.mode == VERIFACTU,
            VerifactuRecord.fecha_expedicion >= date(year, 1, 1),
        )
        .limit(1)
    )
    if sent is not None:
        raise DocumentStateError(
            Said(
                f"this installation sent records to the AEAT (VERI*FACTU) in {year}: it must "
                "stay in VERI*FACTU until the year ends; set PUENTE_VERIFACTU_MODE=verifactu",
                f"Este año ({year}) ya se enviaron registros a la AEAT (VERI*FACTU): hay que "
                "seguir en VERI*FACTU hasta que acabe el año. Pon "
                "PUENTE_VERIFACTU_MODE=verifactu y vuelve a intentarlo.",
            )
        )


def _head(session: Session, issuer: Issuer) -> VerifactuRecord | None:
    return session.scalar(
        select(VerifactuRecord)
        .where(VerifactuRecord.issuer_id == issuer.id)
        .order_by(VerifactuRecord.sequence.desc())
        .limit(1)
    )


def _previous(session: Session, issuer: Issuer) -> tuple[vf.ChainLink | None, int]:
    """The link to the chain's head and the next sequence number (issuer row locked)."""
    head = _head(session, issuer)
    if head is None:
        return None, 1
    link = vf.ChainLink(
        nif=issuer.tax_id,
        num_serie=head.num_serie,
        fecha_expedicion=head.fecha_expedicion,
        huella=head.huella,
    )
    return link, head.sequence + 1


def _next_link(
    session: Session, issuer: Issuer, now: datetime, settings: InvoicingSettings | None
) -> tuple[InvoicingSettings, vf.ChainLink | None, int]:
    """The settings in force, checked for this year's mode, and where the next record goes."""
    settings = _settings(settings)
    _check_mode(session, issuer, now, settings)
    return (settings, *_previous(session, issuer))


def append_alta(
    session: Session,
    issuer: Issuer,
    invoice: Invoice,
    now: datetime,
    settings: InvoicingSettings | None = None,
    *,
    corrects: VerifactuRecord | None = None,
) -> VerifactuRecord:
    """Chain the alta record of a just-numbered invoice (the issuer row is locked by the caller).

    With ``corrects`` (an alta the AEAT refused or accepted with errors), the new record is its
    subsanación: the invoice's data as it is now, Subsanacion S, RechazoPrevio S if the AEAT
    rejected it outright.
    """
    settings, previous, sequence = _next_link(session, issuer, now, settings)
    assert invoice.number is not None and invoice.issue_date is not None
    record = vf.AltaRecord(
        issuer=vf.Issuer(nif=issuer.tax_id, name=issuer.name),
        num_serie=invoice.number,
        fecha_expedicion=invoice.issue_date,
        tipo_factura=invoice.invoice_type,  # type: ignore[arg-type]
        descripcion_operacion=_description(invoice),
        tax_lines=tuple(_tax_line(t) for t in invoice.taxes),
        # The AEAT's validations: CuotaTotal is the sum of CuotaRepercutida and
        # CuotaRecargoEquivalencia, ImporteTotal adds the bases to it. IRPF withheld is not part
        # of either (it is not an invoice tax): ImporteTotal is the total before withholding.
        cuota_total=invoice.tax_total + invoice.surcharge_total,
        importe_total=invoice.total,
        generated_at=now,
        destinatario=_recipient(invoice.customer, invoice.invoice_type),
        previous=previous,
        rectificacion=_rectification(invoice),
        fecha_operacion=invoice.operation_date
        if invoice.operation_date not in (None, invoice.issue_date)
        else None,
        subsanacion=corrects is not None,
        rechazo_previo="S" if corrects is not None and corrects.status == REJECTED else None,
    )
    return _store(
        session,
        issuer,
        invoice,
        sequence,
        record,
        vf.huella_alta(record),
        vf.registro_alta_xml(record, system_for(issuer, settings)),
        settings,
        corrects,
    )


def append_anulacion(
    session: Session,
    issuer: Issuer,
    invoice: Invoice,
    now: datetime,
    settings: InvoicingSettings | None = None,
    *,
    corrects: VerifactuRecord | None = None,
) -> VerifactuRecord:
    """Chain the record that cancels an issued invoice (the issuer row is locked by the caller).

    With ``corrects`` (an anulación the AEAT rejected), the anulación is sent again with
    RechazoPrevio S. Sent to an AEAT that never received the invoice's alta (made without
    VERI*FACTU, or rejected and never corrected), it says SinRegistroPrevio S.
    """
    settings, previous, sequence = _next_link(session, issuer, now, settings)
    assert invoice.number is not None and invoice.issue_date is not None
    alta = current(session, invoice, "alta")
    record = vf.AnulacionRecord(
        issuer=vf.Issuer(nif=issuer.tax_id, name=issuer.name),
        num_serie=invoice.number,
        fecha_expedicion=invoice.issue_date,
        generated_at=now,
        previous=previous,
        sin_registro_previo=settings.sends_records
        and alta is not None
        and (alta.mode == NO_VERIFACTU or alta.status == REJECTED),
        rechazo_previo=corrects is not None,
    )
    return _store(
        session,
        issuer,
        invoice,
        sequence,
        record,
        vf.huella_anulacion(record),
        vf.registro_anulacion_xml(record, system_for(issuer, settings)),
        settings,
        corrects,
    )


def _tax_line(tax: InvoiceTax) -> vf.TaxLine:
    cause = tax.exemption_cause
    if cause in NOT_SUBJECT:
        return vf.TaxLine.not_subject(cause, tax.base)  # type: ignore[arg-type]
    if cause == REVERSE_CHARGE:  # the customer accounts for the IVA: none is charged here
        return vf.TaxLine(Decimal(0), tax.base, Decimal(0), calificacion="S2")
    if cause:
        # ClaveRegimen 02: exports (art. 21 LIVA); everything else in the general regime.
        regime = "02" if cause == "E2" else "01"
        return vf.TaxLine.exempt(cause, tax.base, clave_regimen=regime)  # type: ignore[arg-type]
    # A 0 % surcharge (on 0 % IVA) has nothing to report: the record carries the surcharge
    # only where there is one.
    surcharge = tax.surcharge_rate if tax.surcharge_rate else None
    return vf.TaxLine(
        rate=tax.rate,
        base=tax.base,
        amount=tax.amount,
        calificacion="S1",
        surcharge_rate=surcharge,
        surcharge_amount=tax.surcharge_amount if surcharge is not None else None,
    )


def _store(
    session: Session,
    issuer: Issuer,
    invoice: Invoice,
    sequence: int,
    record: vf.AltaRecord | vf.AnulacionRecord,
    huella: str,
    xml: etree._Element,
    settings: InvoicingSettings,
    corrects: VerifactuRecord | None,
) -> VerifactuRecord:
    alta = record if isinstance(record, vf.AltaRecord) else None
    credentials = record_signer(settings)
    if credentials is not None:  # kept without VERI*FACTU: each record signed (XAdES)
        xml = fe.sign_enveloped(xml, credentials, description="Registro de facturación")
    row = VerifactuRecord(
        issuer_id=issuer.id,
        invoice_id=invoice.id,
        sequence=sequence,
        kind="alta" if alta else "anulacion",
        num_serie=record.num_serie,
        fecha_expedicion=record.fecha_expedicion,
        tipo_factura=alta.tipo_factura if alta else None,
        cuota_total=alta.cuota_total if alta else None,
        importe_total=alta.importe_total if alta else None,
        previous_huella=record.previous.huella if record.previous else None,
        huella=huella,
        generated_at=record.generated_at,
        xml=etree.tostring(xml, encoding="unicode"),
        mode=settings.verifactu_mode,
        aeat_tests=settings.aeat_tests,
        status=PENDING if settings.sends_records else KEPT,
        corrects_id=corrects.id if corrects is not None else None,
        subsanacion=bool(alta and alta.subsanacion),
        rechazo_previo=alta.rechazo_previo
        if alta
        else ("S" if isinstance(record, vf.AnulacionRecord) and record.rechazo_previo else None),
        sin_registro_previo=isinstance(record, vf.AnulacionRecord) and record.sin_registro_previo,
    )
    session.add(row)
    if corrects is not None:
        corrects.status = CORRECTED
    session.flush()
    return row


def _rectification(invoice: Invoice) -> vf.Rectification | None:
    original = invoice.rectifies
    if original is None:
        return None
    assert original.number is not None and original.issue_date is not None
    ref = vf.InvoiceRef(
        nif=invoice.issuer.tax_id if invoice.issuer else "",
        num_serie=original.number,
        fecha=original.issue_date,
    )
    if invoice.rectification_method == "S":
        # What the substitution replaces is the invoice as it stands, earlier rectifications
        # by differences included, not its first amounts.
        standing = standing_of(original, invoice)
        surcharge = sum((i.surcharge_total for i in standing), Decimal(0))
        return vf.Rectification(
            tipo="S",
            facturas=(ref,),
            base_rectificada=sum((i.base_total for i in standing), Decimal(0)),
            cuota_rectificada=sum((i.tax_total for i in standing), Decimal(0)),
            cuota_recargo_rectificado=surcharge or None,
        )
    return vf.Rectification(tipo="I", facturas=(ref,))


def standing_of(original: Invoice, rectifying: Invoice | None = None) -> list[Invoice]:
    """The invoices whose amounts and lines make up ``original`` as it stands (before
    ``rectifying``, left out): the original, then its issued rectifications in order; one by
    differences adds to what came before, one by substitution replaces it."""
    session = object_session(original)
    assert session is not None
    query = select(Invoice).where(
        Invoice.rectifies_id == original.id,
        Invoice.number.is_not(None),
        Invoice.status != InvoiceStatus.CANCELLED,
    )
    if rectifying is not None:
        query = query.where(Invoice.id != rectifying.id)
        if rectifying.issued_at is not None:
            query = query.where(Invoice.issued_at <= rectifying.issued_at)
    standing = [original]
    for earlier in session.scalars(query.order_by(Invoice.issued_at, Invoice.id)):
        standing = [earlier] if earlier.rectification_method == "S" else [*standing, earlier]
    return standing


def _description(invoice: Invoice) -> str:
    text = (invoice.notes or "").strip() or "; ".join(line.description for line in invoice.lines)
    return text[:500]


def _recipient(customer: Customer, invoice_type: str) -> vf.Recipient | None:
    if invoice_type in (InvoiceType.SIMPLIFIED, InvoiceType.R5):
        return None
    if customer.country == "ES":
        return vf.Recipient(name=customer.name, nif=customer.tax_id)
    # EU VAT numbers are NIF-IVA (02); any other foreign id is one of its country (04).
    return vf.Recipient(
        name=customer.name,
        country=customer.country,
        id_type="02" if customer.tax_id_kind == "VAT" else "04",
        other_id=customer.tax_id,
    )


def current(session: Session, invoice: Invoice, kind: str) -> VerifactuRecord | None:
    """The invoice's record of this kind that counts: the newest (a correction replaces)."""
    return session.scalar(
        select(VerifactuRecord)
        .where(VerifactuRecord.invoice_id == invoice.id, VerifactuRecord.kind == kind)
        .order_by(VerifactuRecord.sequence.desc())
        .limit(1)
    )


def alta_of(invoice: Invoice) -> VerifactuRecord:
    session = object_session(invoice)
    assert session is not None
    row = current(session, invoice, "alta")
    if row is None:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.id} has no VERI*FACTU record: it is not issued",
                f"La factura {invoice.id} no tiene registro VERI*FACTU: no está emitida.",
            )
        )
    return row


def qr_url_of(invoice: Invoice, record: VerifactuRecord | None = None) -> str:
    """The AEAT cotejo URL printed as QR on the invoice, as the mode of its alta record (given,
    or looked up) decides: ValidarQR (production, or the test portal for records sent to the
    AEAT's tests) or ValidarQRNoVerifactu."""
    record = record or alta_of(invoice)
    assert record.importe_total is not None
    return vf.qr_url(
        invoice.issuer.tax_id if invoice.issuer else "",
        record.num_serie,
        record.fecha_expedicion,
        record.importe_total,
        production=not record.aeat_tests,
        verifactu=record.mode == VERIFACTU,
    )


def document_for(session: Session, invoice: Invoice, kind: str = "alta") -> bytes:
    """The invoice's record wrapped as a RegFactuSistemaFacturacion document."""
    row = current(session, invoice, kind)
    if row is None or invoice.issuer is None:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.id} has no VERI*FACTU {kind} record",
                f"La factura {invoice.id} no tiene registro VERI*FACTU de "
                f"{'anulación' if kind == 'anulacion' else kind}.",
            )
        )
    return wrap(invoice.issuer, [row.xml])


def wrap(issuer: Issuer, records_xml: list[str]) -> bytes:
    """Wrap stored RegistroAlta/RegistroAnulacion elements as a SuministroLR document.

    The stored XML is what was hashed and chained at issue time; it is never rebuilt.
    """
    sum_, sum1 = f"{{{vf.NS_SUM}}}", f"{{{vf.NS_SUM1}}}"
    root = etree.Element(sum_ + "RegFactuSistemaFacturacion", nsmap=vf.NSMAP)
    cabecera = etree.SubElement(root, sum_ + "Cabecera")
    obligado = etree.SubElement(cabecera, sum1 + "ObligadoEmision")
    etree.SubElement(obligado, sum1 + "NombreRazon").text = issuer.name
    etree.SubElement(obligado, sum1 + "NIF").text = issuer.tax_id
    for xml in records_xml:
        etree.SubElement(root, sum_ + "RegistroFactura").append(etree.fromstring(xml))
    etree.cleanup_namespaces(root, top_nsmap=vf.NSMAP)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result
