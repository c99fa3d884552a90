"""Invoices for people: the list, one invoice with its VERI*FACTU record and QR, and what can
be done to it (issue, record a payment, e-mail, cancel, rectify)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from actions.invoicing import invoicing_settings, signing_credentials
from invoicing import chain, corrections, issuing, mailer, payments, verifactu
from invoicing.errors import InvoicingError
from invoicing.models import DocumentKind, Invoice, Issuer
from invoicing.service import CustomerData, Invoicing, LineData
from web import current_runtime
from web.filters import refusal
from web.ui.common import (
    HELPERS,
    PAGE,
    PLURALS,
    allow,
    blueprint,
    doc_url,
    once_key,
    page_number,
    sessions,
    typed_amount,
)

bp = blueprint("invoices", __name__)


@bp.get("/invoices")
def invoices() -> Any:
    page = page_number()
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(Invoice)) or 0
        rows = s.scalars(
            select(Invoice)
            .options(selectinload(Invoice.customer))
            .order_by(Invoice.id.desc())
            .limit(PAGE)
            .offset((page - 1) * PAGE)
        ).all()
        return render_template(
            "ui/invoices.html", invoices=rows, page=page, has_next=page * PAGE < total
        )


@bp.get("/invoices/<int:invoice_id>")
def invoice_detail(invoice_id: int) -> Any:
    with sessions()() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None:
            abort(404)
        record = chain.alta_of(invoice) if invoice.number else None
        cancellation = chain.current(s, invoice, "anulacion") if invoice.number else None
        issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        return render_template(
            "ui/invoice.html",
            invoice=invoice,
            record=record,
            cancellation=cancellation,
            correctable=corrections.CORRECTABLE,
            issuer=issuer,
            today=issuing.today().isoformat(),
        )


LINE_FIELDS = ("sku", "description", "quantity", "unit_price", "discount_percent", "tax_rate")
CUSTOMER_FIELDS = ("name", "tax_id", "email", "street", "postal_code", "city", "province")
BLANK_LINES = 3  # empty rows under the lines, to add some without a script


@bp.route("/invoices/<int:invoice_id>/edit", methods=["GET", "POST"])
@allow("billing", to_read=True)
def draft_edit(invoice_id: int) -> Any:
    """Review a draft (invoice, quote, order or delivery note) before it is issued: its
    customer, lines, general discount and notes."""
    error = None
    if request.method == "POST":
        form = request.form
        lines = [
            LineData.from_json(line)
            for line in _lines(form)
            if any(line.get(f) for f in ("sku", "description", "unit_price"))
        ]
        customer = {f: form.get(f"customer_{f}", "").strip() or None for f in CUSTOMER_FIELDS}
        try:
            with sessions().begin() as s:
                doc = _draft(s, invoice_id)
                country = doc.customer.country
                Invoicing(s).edit_draft(
                    invoice_id,
                    lines=lines,
                    customer=CustomerData(**customer, country=country),  # type: ignore[arg-type]
                    notes=form.get("notes", ""),
                    discount_percent=typed_amount(form.get("discount_percent")) or 0,
                )
                target = doc_url(doc)
        except InvoicingError as exc:
            error = exc
        else:
            flash("draft_saved", "ok")
            return redirect(target)
    with sessions()() as s:
        doc = _draft(s, invoice_id)
        return render_template(
            "ui/draft_edit.html",
            **HELPERS,
            doc=doc,
            error=error,
            form=request.form if error else None,
            blank=range(len(doc.lines), len(doc.lines) + BLANK_LINES),
        ), (422 if error else 200)


def _lines(form: Any) -> list[dict[str, str]]:
    """line-<n>-<field> inputs as lines, in their order; amounts typed the Spanish way."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        m = re.fullmatch(r"line-(\d{1,3})-([a-z_]+)", key)
        if m and m.group(2) in LINE_FIELDS:
            amount = m.group(2) not in ("sku", "description")
            found.setdefault(int(m.group(1)), {})[m.group(2)] = (
                typed_amount(value) if amount else value.strip()
            )
    lines = [found[n] for n in sorted(found)]
    for line in lines:
        line.setdefault("quantity", "")
        for name in ("unit_price", "tax_rate", "sku", "description"):
            if not line.get(name):
                line.pop(name, None)
    return lines


def _draft(s: Any, invoice_id: int) -> Invoice:
    doc = s.get(Invoice, invoice_id)
    if doc is None:
        abort(404)
    return doc


@bp.post("/invoices/<int:invoice_id>/delete")
@allow("billing")
def draft_delete(invoice_id: int) -> Any:
    try:
        with sessions().begin() as s:
            kind = _draft(s, invoice_id).kind
            Invoicing(s).delete_draft(invoice_id)
    except InvoicingError as exc:
        flash(refusal(exc), "error")
        return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))
    flash("draft_deleted", "ok")
    if kind == "invoice":
        return redirect(url_for("invoices.invoices"))
    return redirect(url_for("documents.documents", kind=PLURALS[DocumentKind(kind)]))


@bp.get("/invoices/<int:invoice_id>/qr.svg")
def invoice_qr(invoice_id: int) -> Any:
    with sessions()() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None or invoice.number is None:
            abort(404)
        url = chain.qr_url_of(invoice)
    return Response(verifactu.qr_svg(url), mimetype="image/svg+xml")


def _attempt(invoice_id: int, action: Any, done: str) -> Any:
    """Run an invoicing operation for a form; show its refusal in plain words."""
    try:
        with sessions().begin() as s:
            action(s)
        flash(done, "ok")
    except InvoicingError as exc:
        flash(refusal(exc), "error")
    return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))


@bp.post("/invoices/<int:invoice_id>/records/<int:record_id>/correct")
def record_correct(invoice_id: int, record_id: int) -> Any:
    """Admins: send the subsanación (or the anulación again) of a record the AEAT refused,
    once what it objected to has been fixed."""
    return _attempt(
        invoice_id, lambda s: corrections.correct_record(s, record_id), "record_corrected_ok"
    )


@bp.post("/invoices/<int:invoice_id>/issue")
@allow("billing")
def invoice_issue(invoice_id: int) -> Any:
    return _attempt(invoice_id, lambda s: issuing.issue(s, invoice_id), "issued_ok")


@bp.post("/invoices/<int:invoice_id>/payments")
@allow("billing")
def invoice_pay(invoice_id: int) -> Any:
    form = request.form
    try:
        paid_on = date.fromisoformat(form["paid_on"]) if form.get("paid_on") else None
    except ValueError:
        flash("paid_on_invalid", "error")
        return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))
    amount = typed_amount(form.get("amount"))
    return _attempt(
        invoice_id,
        lambda s: payments.record_payment(
            s,
            invoice_id,
            amount,
            paid_on,
            method=form.get("method") or None,
            reference=form.get("reference") or None,
            idempotency_key=once_key(),
        ),
        "payment_ok",
    )


@bp.post("/invoices/<int:invoice_id>/send")
@allow("billing")
def invoice_send(invoice_id: int) -> Any:
    """E-mail the invoice; a failed attempt is kept in the history, with its reason."""
    runtime = current_runtime()
    to = (request.form.get("to") or "").strip() or None
    try:
        with sessions().begin() as s:
            try:
                mailer.send_invoice(
                    s,
                    invoice_id,
                    mailer.MailSettings.from_settings(invoicing_settings(runtime.services)),
                    to=to,
                    credentials=signing_credentials(runtime.services),
                )
                flash("sent_ok", "ok")
            except mailer.MailDeliveryError as exc:  # committed: the attempt is recorded
                flash(refusal(exc), "error")
    except InvoicingError as exc:
        flash(refusal(exc), "error")
    return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))


@bp.post("/invoices/<int:invoice_id>/cancel")
@allow("billing")
def invoice_cancel(invoice_id: int) -> Any:
    reason = request.form.get("reason") or ""
    return _attempt(invoice_id, lambda s: corrections.cancel(s, invoice_id, reason), "cancelled_ok")


@bp.post("/invoices/<int:invoice_id>/rectify")
@allow("billing")
def invoice_rectify(invoice_id: int) -> Any:
    """Draft a rectifying invoice by substitution, to be reviewed and issued like any draft."""
    form = request.form
    try:
        with sessions().begin() as s:
            draft = corrections.rectify(
                s,
                invoice_id,
                invoice_type=form.get("invoice_type", ""),
                method="S",
                reason=form.get("reason") or "",
                idempotency_key=once_key(),
            )
            draft_id = draft.id
    except InvoicingError as exc:
        flash(refusal(exc), "error")
        return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))
    flash("rectify_ok", "ok")
    return redirect(url_for("invoices.invoice_detail", invoice_id=draft_id))
