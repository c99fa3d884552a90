"""Invoices: list, read, create drafts, issue, record payments."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session, selectinload

from actions.invoicing import signing_credentials
from connector import schemas
from invoicing import aeat, chain, corrections, exports, issuing, payments, sif_log, verifactu
from invoicing.models import (
    Customer,
    DocumentKind,
    Invoice,
    InvoiceStatus,
    InvoiceTax,
    Issuer,
    SifEvent,
    VerifactuRecord,
)
from invoicing.service import CustomerData, Invoicing, LineData
from web import current_runtime
from web.api import ApiError, bp, is_id, iso, json_body, listing, not_found, page, sessions
from web.api.idempotency import idempotent, request_key
from web.auth import needs

CREATE_SCHEMA = "actions/invoicing.create_draft_invoice.input.json"
PLURALS = {"quotes": "quote", "orders": "order", "delivery-notes": "delivery_note"}
ROUTES = {kind: plural for plural, kind in PLURALS.items()} | {"invoice": "invoices"}


def plain(value: Any) -> str:
    """A decimal without trailing zeros: 20.00000000 → '20', 95.5 → '95.5'."""
    return format(value.normalize(), "f")


def invoice_json(invoice: Invoice, with_lines: bool = False) -> dict[str, Any]:
    customer = invoice.customer
    data: dict[str, Any] = {
        "id": invoice.id,
        "kind": invoice.kind,
        "status": invoice.status,
        "invoice_type": invoice.invoice_type,
        "number": invoice.number,
        "issue_date": iso(invoice.issue_date),
        "operation_date": iso(invoice.operation_date),
        "currency": invoice.currency,
        "customer": {"id": customer.id, "name": customer.name, "tax_id": customer.tax_id},
        "source": invoice.source,
        "external_ref": invoice.external_ref,
        "discount_percent": plain(invoice.discount_percent),
        "due_date": iso(invoice.due_date),
        # base: taxable base; tax: IVA; total: base + IVA + recargo de equivalencia;
        # outstanding: what is still owed of the amount due (total - IRPF withheld).
        "totals": {
            "base": str(invoice.base_total),
            "tax": str(invoice.tax_total),
            "total": str(invoice.total),
            "paid": str(invoice.paid_total),
            "outstanding": str(invoice.outstanding),
        },
        # gross - discount = base; total - withholding = due (what the customer pays).
        "amounts": {
            "gross": str(invoice.base_total + invoice.discount_total),
            "discount": str(invoice.discount_total),
            "surcharge": str(invoice.surcharge_total),
            "withholding": str(invoice.withholding_total),
            "due": str(invoice.amount_due),
        },
        "created_at": iso(invoice.created_at),
        "issued_at": iso(invoice.issued_at),
        "cancelled_at": iso(invoice.cancelled_at),
        "rectifies": invoice.rectifies_id,
        "rectification_method": invoice.rectification_method,
        "converted_from": invoice.converted_from_id,
    }
    if with_lines:
        data["customer"].update(
            equivalence_surcharge=customer.equivalence_surcharge,
            payment_days=customer.payment_days,
            email=customer.email,
            address={
                "street": customer.street,
                "postal_code": customer.postal_code,
                "city": customer.city,
                "province": customer.province,
                "country": customer.country,
            },
        )
        data["lines"] = [
            {
                "id": line.id,
                "position": line.position,
                "sku": line.sku,
                "description": line.description,
                "quantity": plain(line.quantity),
                "unit_price": plain(line.unit_price),
                "discount_percent": plain(line.discount_percent),
                "tax_rate": plain(line.tax_rate),
                "exemption_cause": line.exemption_cause,
                "service": line.service,
                "withholding_rate": None
                if line.withholding_rate is None
                else plain(line.withholding_rate),
                "gross": str(line.gross),
                "discount": str(line.discount),
                "base": str(line.base),
            }
            for line in invoice.lines
        ]
        data["taxes"] = [tax_json(t) for t in invoice.taxes]
        data["withholdings"] = [
            {"rate": plain(w.rate), "base": str(w.base), "amount": str(w.amount)}
            for w in invoice.withholdings
        ]
        data["payments"] = [
            {
                "id": p.id,
                "amount": str(p.amount),
                "paid_on": iso(p.paid_on),
                "method": p.method,
                "reference": p.reference,
            }
            for p in invoice.payments
        ]
        data["notes"] = invoice.notes
        data["verifactu"] = verifactu_json(invoice) if invoice.number else None
    return data


def record_json(r: VerifactuRecord) -> dict[str, Any]:
    """One VERI*FACTU record: its hashed fields, where it stands, what the AEAT said of it."""
    return {
        "id": r.id,
        "sequence": r.sequence,
        "kind": r.kind,
        "invoice_id": r.invoice_id,
        "num_serie": r.num_serie,
        "fecha_expedicion": iso(r.fecha_expedicion),
        "tipo_factura": r.tipo_factura,
        "cuota_total": None if r.cuota_total is None else str(r.cuota_total),
        "importe_total": None if r.importe_total is None else str(r.importe_total),
        "previous_huella": r.previous_huella,
        "huella": r.huella,
        "generated_at": iso(r.generated_at),
        "mode": r.mode,
        "status": r.status,
        "error_code": r.error_code,
        "error_description": r.error_description,
        "corrects": r.corrects_id,
        "subsanacion": r.subsanacion,
        "rechazo_previo": r.rechazo_previo,
        "sin_registro_previo": r.sin_registro_previo,
    }


def verifactu_json(invoice: Invoice) -> dict[str, Any]:
    """The issued invoice's records that count (the newest alta and anulación) and its QR."""
    session = object_session(invoice)
    assert session is not None
    alta = chain.alta_of(invoice)
    cancellation = chain.current(session, invoice, "anulacion")
    return {
        **record_json(alta),
        "qr_url": chain.qr_url_of(invoice, alta),
        "cancellation": None if cancellation is None else record_json(cancellation),
    }


def tax_json(tax: InvoiceTax) -> dict[str, Any]:
    """One IVA row; an exempt row names its cause, a row with recargo de equivalencia adds it."""
    data: dict[str, Any] = {
        "rate": plain(tax.rate),
        "base": str(tax.base),
        "amount": str(tax.amount),
    }
    if tax.exemption_cause:
        data["exemption_cause"] = tax.exemption_cause
    if tax.surcharge_rate is not None:
        data["surcharge_rate"] = plain(tax.surcharge_rate)
        data["surcharge_amount"] = str(tax.surcharge_amount)
    return data


def _load(s: Session, invoice_id: int, kind: str = "invoice") -> Invoice:
    invoice = s.get(Invoice, invoice_id)
    if invoice is None or invoice.kind != kind:
        raise not_found(kind.replace("_", " "), invoice_id)
    return invoice


@bp.get("/invoices")
def list_invoices() -> Any:
    limit, offset = page()
    query = (
        select(Invoice)
        .options(selectinload(Invoice.customer))
        .where(Invoice.kind == DocumentKind.INVOICE)
    )
    status = request.args.get("status")
    if status and status not in set(InvoiceStatus):
        raise ApiError(
            400, "bad_request", f"status must be one of: {', '.join(InvoiceStatus)}", "status"
        )
    for field in ("status", "external_ref", "source", "number"):
        if request.args.get(field):
            query = query.where(getattr(Invoice, field) == request.args[field])
    return listing(query, Invoice.id.desc(), invoice_json, limit, offset)


@bp.get("/invoices/<int:invoice_id>")
def get_invoice(invoice_id: int) -> Any:
    with sessions()() as s:
        return jsonify(invoice_json(_load(s, invoice_id), with_lines=True))


@bp.post("/invoices")
@idempotent
def create_invoice() -> Any:
    """Create a draft from an inline customer or a customer_id, and lines."""
    return create_draft(DocumentKind.INVOICE)


def create_draft(kind: str) -> Any:
    """Create a draft document of `kind` from the request body (shared by every kind)."""
    data = json_body()
    what = kind.replace("_", " ")
    with sessions().begin() as s:
        if "customer_id" in data:
            customer_id = data.pop("customer_id")
            data["customer"] = _customer_json(s, customer_id)
        given = data.pop("kind", kind)
        if given != kind:  # the route names the kind: POST /quotes makes quotes
            route = ROUTES.get(given) if isinstance(given, str) else None
            hint = f": send a {given.replace('_', ' ')} to POST /api/v1/{route}" if route else ""
            raise ApiError(422, "invalid", f"this route makes {what}s{hint}", "kind")
        if kind != DocumentKind.INVOICE and "invoice_type" in data:
            raise ApiError(422, "invalid", f"a {what} has no invoice_type", "invoice_type")
        errors = schemas.validate(CREATE_SCHEMA, data)
        if errors:
            raise ApiError.invalid(errors, f"the {what} is not valid")
        result = Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            currency=data.get("currency", "EUR"),
            source=data.get("source"),
            external_ref=data.get("external_ref"),
            idempotency_key=request_key(),
            notes=data.get("notes"),
            invoice_type=data.get("invoice_type", "F1"),
            kind=kind,
            discount_percent=data.get("discount_percent") or 0,
            operation_date=data.get("operation_date"),
        )
        body = invoice_json(result.invoice, with_lines=True)
        body["created"] = result.created
        return jsonify(body), 201 if result.created else 200


def _customer_json(s: Session, customer_id: Any) -> dict[str, Any]:
    customer = s.get(Customer, customer_id) if is_id(customer_id) else None
    if customer is None:
        raise ApiError(422, "invalid", f"customer {customer_id!r} does not exist", "customer_id")
    address = {
        k: getattr(customer, k)
        for k in ("street", "postal_code", "city", "province")
        if getattr(customer, k)
    }
    return {
        "name": customer.name,
        "tax_id": customer.tax_id,
        "email": customer.email,
        "address": {**address, "country": customer.country},
    }


@bp.post("/invoices/<int:invoice_id>/issue")
def issue_invoice(invoice_id: int) -> Any:
    data = json_body() if request.get_data() else {}
    issue_date = _date(data.get("issue_date"), "issue_date") if data.get("issue_date") else None
    with sessions().begin() as s:
        _load(s, invoice_id)
        issued = issuing.issue(s, invoice_id, series_code=data.get("series"), issue_date=issue_date)
        return jsonify(invoice_json(issued.invoice, with_lines=True)), 200


@bp.post("/invoices/<int:invoice_id>/payments")
@idempotent
def pay_invoice(invoice_id: int) -> Any:
    data = json_body()
    if "amount" not in data:
        raise ApiError(422, "invalid", "amount is required", "amount")
    paid_on = _date(data["paid_on"], "paid_on") if data.get("paid_on") else None
    with sessions().begin() as s:
        _load(s, invoice_id)
        recorded = payments.record_payment(
            s,
            invoice_id,
            data["amount"],
            paid_on,
            method=data.get("method"),
            reference=data.get("reference"),
            idempotency_key=request_key(),
        )
        body = invoice_json(recorded.invoice, with_lines=True)
        body["payment_id"] = recorded.payment.id
        return jsonify(body), 201 if recorded.created else 200


def _date(value: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ApiError(422, "invalid", f"{field} must be a date like 2026-11-28", field) from None


def _issued(s: Session, invoice_id: int) -> Invoice:
    invoice = _load(s, invoice_id)
    if invoice.number is None:
        raise ApiError(409, "conflict", f"invoice {invoice_id} is a draft: issue it first")
    return invoice


@bp.get("/invoices/<int:invoice_id>/facturae.xml")
def facturae_xml(invoice_id: int) -> Any:
    """Facturae 3.2.2, signed (XAdES-EPES) when PUENTE_FACTURAE_P12 is configured."""
    credentials = signing_credentials(current_runtime().services)
    with sessions()() as s:
        document = exports.facturae_xml(_issued(s, invoice_id), credentials)
    response = Response(document, mimetype="application/xml")
    response.headers["Content-Disposition"] = f'attachment; filename="facturae-{invoice_id}.xml"'
    return response


@bp.get("/invoices/<int:invoice_id>/verifactu.xml")
def verifactu_xml(invoice_id: int) -> Any:
    with sessions().begin() as s:
        document = chain.document_for(s, _issued(s, invoice_id))
        sif_log.log(s, "record_export", {"invoice_id": invoice_id, "kind": "alta"})
    return Response(document, mimetype="application/xml")


@bp.get("/invoices/<int:invoice_id>/qr.<fmt>")
def qr(invoice_id: int, fmt: str) -> Any:
    if fmt not in ("png", "svg"):
        raise ApiError(404, "not_found", "the QR comes as qr.png or qr.svg")
    with sessions()() as s:
        url = chain.qr_url_of(_issued(s, invoice_id))
    if fmt == "png":
        return Response(verifactu.qr_png(url), mimetype="image/png")
    return Response(verifactu.qr_svg(url), mimetype="image/svg+xml")


@bp.get("/verifactu/records")
def verifactu_records() -> Any:
    """The issuer's chain in order (ours unless ?issuer=<NIF>), with each record's hashed
    fields, huella and what the AEAT answered; ?status=rejected lists what needs correcting."""
    nif = request.args.get("issuer")
    status = request.args.get("status")
    if status is not None and status not in aeat.STATUSES:
        raise ApiError(
            422, "invalid", f"status must be one of {', '.join(aeat.STATUSES)}", "status"
        )
    limit, offset = page()
    with sessions()() as s:
        if nif:
            issuer = s.scalar(select(Issuer).where(Issuer.tax_id == nif.strip().upper()))
        else:
            issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        if issuer is None:
            raise not_found("issuer", nif or "(none configured)")
        query = select(VerifactuRecord).where(VerifactuRecord.issuer_id == issuer.id)
        if status is not None:
            query = query.where(VerifactuRecord.status == status)
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.scalars(query.order_by(VerifactuRecord.sequence).limit(limit).offset(offset))
        items = [record_json(r) for r in rows]
        return jsonify({"items": items, "total": total, "limit": limit, "offset": offset})


@bp.post("/verifactu/records/<int:record_id>/correct")
@needs("admin")
def correct_verifactu_record(record_id: int) -> Any:
    """Correct a record the AEAT rejected or accepted with errors, once its cause is fixed:
    chains and queues its subsanación (an alta) or the anulación again."""
    with sessions().begin() as s:
        record = corrections.correct_record(s, record_id)
        return jsonify(record_json(record)), 201


@bp.post("/invoices/<int:invoice_id>/cancel")
def cancel_invoice(invoice_id: int) -> Any:
    """Anulación: for an invoice issued in error; chains a RegistroAnulacion."""
    data = json_body()
    reason = data.get("reason")
    if not isinstance(reason, str):
        raise ApiError(422, "invalid", "reason is required: say why it is cancelled", "reason")
    with sessions().begin() as s:
        _load(s, invoice_id)
        invoice = corrections.cancel(s, invoice_id, reason)
        return jsonify(invoice_json(invoice, with_lines=True))


@bp.post("/invoices/<int:invoice_id>/rectify")
@idempotent
def rectify_invoice(invoice_id: int) -> Any:
    """Draft a rectifying invoice (R1–R5) by substitution (S) or by differences (I)."""
    data = json_body()
    for name in ("invoice_type", "method", "reason"):
        if not isinstance(data.get(name), str):
            raise ApiError(422, "invalid", f"{name} is required", name)
    lines = None
    if data.get("lines") is not None:
        errors = schemas.validate(
            CREATE_SCHEMA, {"customer": {"name": "-", "tax_id": "-"}, "lines": data["lines"]}
        )
        errors = [e for e in errors if e.path.startswith("lines")]
        if errors:
            raise ApiError.invalid(errors)
        lines = [LineData.from_json(line) for line in data["lines"]]
    with sessions().begin() as s:
        _load(s, invoice_id)
        draft = corrections.rectify(
            s,
            invoice_id,
            invoice_type=data["invoice_type"],
            method=data["method"],
            reason=data["reason"],
            lines=lines,
            idempotency_key=request_key(),
        )
        return jsonify(invoice_json(draft, with_lines=True)), 201


@bp.get("/invoices/<int:invoice_id>/verifactu-anulacion.xml")
def verifactu_anulacion_xml(invoice_id: int) -> Any:
    with sessions()() as s:
        document = chain.document_for(s, _issued(s, invoice_id), kind="anulacion")
    return Response(document, mimetype="application/xml")


@bp.patch("/invoices/<int:invoice_id>")
def patch_invoice(invoice_id: int) -> Any:
    """Edit a draft: lines, customer (inline or customer_id) and notes."""
    return patch_draft(DocumentKind.INVOICE, invoice_id)


def patch_draft(kind: str, doc_id: int) -> Any:
    data = json_body()
    unknown = sorted(set(data) - {"lines", "customer", "customer_id", "notes", "discount_percent"})
    if unknown:
        raise ApiError(
            422,
            "invalid",
            f"unknown fields: {', '.join(unknown)}; a draft's lines, customer, discount_percent "
            "and notes change",
            unknown[0],
        )
    with sessions().begin() as s:
        _load(s, doc_id, kind)
        if "customer_id" in data:
            data["customer"] = _customer_json(s, data.pop("customer_id"))
        probe = {
            "customer": data.get("customer") or {"name": "-", "tax_id": "-"},
            "lines": data.get("lines") or [{"sku": "-", "quantity": 1}],
        }
        if "discount_percent" in data:
            probe["discount_percent"] = data["discount_percent"]
        errors = [
            e
            for e in schemas.validate(CREATE_SCHEMA, probe)
            if e.path.split(".")[0].split("[")[0] in data
        ]
        if "notes" in data and not isinstance(data["notes"], str | None):
            raise ApiError(422, "invalid", "notes must be text", "notes")
        if errors:
            raise ApiError.invalid(errors)
        invoice = Invoicing(s).edit_draft(
            doc_id,
            lines=[LineData.from_json(line) for line in data["lines"]] if "lines" in data else None,
            customer=CustomerData.from_json(data["customer"]) if "customer" in data else None,
            notes=(data.get("notes") or "") if "notes" in data else None,
            discount_percent=(data["discount_percent"] or 0)
            if "discount_percent" in data
            else None,
        )
        return jsonify(invoice_json(invoice, with_lines=True))


@bp.get("/verifactu/events")
def verifactu_events() -> Any:
    """The event log (registro de eventos) in order, each event's hash chained to the one
    before, and whether both chains (records and events) are intact; reading it is logged."""
    limit, offset = page()
    with sessions().begin() as s:
        found = sif_log.inspect(s)
        sif_log.log(s, "event_export", {"limit": limit, "offset": offset})
        query = select(SifEvent)
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.scalars(query.order_by(SifEvent.sequence).limit(limit).offset(offset))
        items = [
            {
                "sequence": e.sequence,
                "kind": e.kind,
                "description": sif_log.KINDS.get(e.kind, e.kind),
                "detail": e.detail,
                "occurred_at": iso(e.occurred_at),
                "previous_hash": e.previous_hash,
                "hash": e.hash,
            }
            for e in rows
        ]
        return jsonify(
            {
                "items": items,
                "total": total,
                "limit": limit,
                "offset": offset,
                "intact": not found.anomalies,
                "anomalies": list(found.anomalies),
            }
        )
