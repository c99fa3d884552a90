"""Invoices for people: the list, one invoice with its VERI*FACTU record and QR, and what can
be done to it (issue, record a payment, e-mail, cancel, rectify)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from actions.invoicing import invoicing_settings, signing_credentials
from invoicing import chain, corrections, issuing, mailer, payments, verifactu
from invoicing.errors import InvoicingError
from invoicing.models import Invoice, Issuer
from web import current_runtime
from web.ui.common import PAGE, allow, blueprint, once_key, page_number, sessions

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
        issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        return render_template(
            "ui/invoice.html",
            invoice=invoice,
            record=record,
            issuer=issuer,
            today=issuing.today().isoformat(),
        )


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
        flash(str(exc), "error")
    return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))


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
    amount = (form.get("amount") or "").replace(",", ".").strip()
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
                flash(str(exc), "error")
    except InvoicingError as exc:
        flash(str(exc), "error")
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
        flash(str(exc), "error")
        return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))
    flash("rectify_ok", "ok")
    return redirect(url_for("invoices.invoice_detail", invoice_id=draft_id))
