"""The issuer's VERI*FACTU chain: one record per issue or cancellation, each hashing the last."""

from __future__ import annotations

from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from invoicing import verifactu as vf
from invoicing.errors import DocumentStateError, Said
from invoicing.models import Customer, Invoice, InvoiceTax, InvoiceType, Issuer, VerifactuRecord

SYSTEM_NAME = "Puente"
SYSTEM_ID = "PU"
SYSTEM_VERSION = "0.1.0"


def system_for(issuer: Issuer) -> vf.SystemInfo:
    """Our SistemaInformatico; its producer is the issuer unless configured otherwise."""
    return vf.SystemInfo(
        producer_name=issuer.sif_producer_name or issuer.name,
        producer_nif=issuer.sif_producer_tax_id or issuer.tax_id,
        system_name=SYSTEM_NAME,
        system_id=SYSTEM_ID,
        version=SYSTEM_VERSION,
        installation_number=issuer.sif_installation or "1",
        solo_verifactu=True,
        multi_ot=False,
        multiples_ot=False,
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


def append_alta(
    session: Session, issuer: Issuer, invoice: Invoice, now: datetime
) -> VerifactuRecord:
    """Chain the alta record of a just-numbered invoice (the issuer row is locked by the caller)."""
    previous, sequence = _previous(session, issuer)
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
    )
    return _store(
        session,
        issuer,
        invoice,
        sequence,
        "alta",
        record,
        vf.huella_alta(record),
        vf.registro_alta_xml(record, system_for(issuer)),
    )


def append_anulacion(
    session: Session, issuer: Issuer, invoice: Invoice, now: datetime
) -> VerifactuRecord:
    """Chain the record that cancels an issued invoice (the issuer row is locked by the caller)."""
    previous, sequence = _previous(session, issuer)
    assert invoice.number is not None and invoice.issue_date is not None
    record = vf.AnulacionRecord(
        issuer=vf.Issuer(nif=issuer.tax_id, name=issuer.name),
        num_serie=invoice.number,
        fecha_expedicion=invoice.issue_date,
        generated_at=now,
        previous=previous,
    )
    return _store(
        session,
        issuer,
        invoice,
        sequence,
        "anulacion",
        record,
        vf.huella_anulacion(record),
        vf.registro_anulacion_xml(record, system_for(issuer)),
    )


def _tax_line(tax: InvoiceTax) -> vf.TaxLine:
    if tax.exemption_cause:
        return vf.TaxLine.exempt(tax.exemption_cause, tax.base)  # type: ignore[arg-type]
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
    kind: str,
    record: vf.AltaRecord | vf.AnulacionRecord,
    huella: str,
    xml: etree._Element,
) -> VerifactuRecord:
    alta = record if isinstance(record, vf.AltaRecord) else None
    row = VerifactuRecord(
        issuer_id=issuer.id,
        invoice_id=invoice.id,
        sequence=sequence,
        kind=kind,
        num_serie=record.num_serie,
        fecha_expedicion=record.fecha_expedicion,
        tipo_factura=alta.tipo_factura if alta else None,
        cuota_total=alta.cuota_total if alta else None,
        importe_total=alta.importe_total if alta else None,
        previous_huella=record.previous.huella if record.previous else None,
        huella=huella,
        generated_at=record.generated_at,
        xml=etree.tostring(xml, encoding="unicode"),
    )
    session.add(row)
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
        return vf.Rectification(
            tipo="S",
            facturas=(ref,),
            base_rectificada=original.base_total,
            cuota_rectificada=original.tax_total,
            cuota_recargo_rectificado=original.surcharge_total or None,
        )
    return vf.Rectification(tipo="I", facturas=(ref,))


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


def alta_of(invoice: Invoice) -> VerifactuRecord:
    session = object_session(invoice)
    assert session is not None
    row = session.scalar(
        select(VerifactuRecord).where(
            VerifactuRecord.invoice_id == invoice.id, VerifactuRecord.kind == "alta"
        )
    )
    if row is None:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.id} has no VERI*FACTU record: it is not issued",
                f"La factura {invoice.id} no tiene registro VERI*FACTU: no está emitida.",
            )
        )
    return row


def qr_url_of(invoice: Invoice, production: bool = True) -> str:
    """The AEAT cotejo URL printed as QR on the invoice."""
    record = alta_of(invoice)
    assert record.importe_total is not None
    return vf.qr_url(
        invoice.issuer.tax_id if invoice.issuer else "",
        record.num_serie,
        record.fecha_expedicion,
        record.importe_total,
        production,
    )


def document_for(session: Session, invoice: Invoice, kind: str = "alta") -> bytes:
    """The invoice's record wrapped as a RegFactuSistemaFacturacion document."""
    row = session.scalar(
        select(VerifactuRecord).where(
            VerifactuRecord.invoice_id == invoice.id, VerifactuRecord.kind == kind
        )
    )
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
