"""The invoice to print (A4 HTML with its VERI*FACTU QR) and to download as PDF."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, url_for
from markupsafe import Markup
from sqlalchemy.orm import Session

from actions.invoicing import signing_credentials
from invoicing import chain, exports, pdf, verifactu
from invoicing.errors import InvoicingError
from invoicing.models import DocumentKind, Invoice
from web import current_runtime
from web.filters import refusal
from web.ui.common import blueprint, sessions

bp = blueprint("printing", __name__)


def _invoice(s: Session, invoice_id: int) -> Invoice:
    invoice = s.get(Invoice, invoice_id)
    if invoice is None or invoice.kind != DocumentKind.INVOICE:
        abort(404)  # quotes, orders and delivery notes are not invoices
    return invoice


def _inline_svg(url: str) -> Markup:
    """segno's SVG (generated here, from our own URL) without its XML declaration."""
    svg = verifactu.qr_svg(url).decode("utf-8")
    return Markup(svg[svg.index("<svg") :])


@bp.get("/invoices/<int:invoice_id>/print")
def invoice_print(invoice_id: int) -> Any:
    with sessions()() as s:
        invoice = _invoice(s, invoice_id)
        draft = pdf.is_draft(invoice)
        url = None if draft else chain.qr_url_of(invoice)
        return render_template(
            "ui/print.html",
            invoice=invoice,
            issuer=pdf.shown_issuer(invoice),
            draft=draft,
            qr_svg=_inline_svg(url) if url else None,
            # The legend as on the PDF: only a VERI*FACTU invoice's QR (ValidarQR) carries it.
            verifactu=url is not None and verifactu.is_verifactu_qr(url),
            legal=pdf,
        )


@bp.get("/invoices/<int:invoice_id>/pdf")
def invoice_pdf(invoice_id: int) -> Any:
    with sessions()() as s:
        invoice = _invoice(s, invoice_id)
        return pdf_response(pdf.pdf_of(invoice), pdf.filename(invoice))


@bp.get("/invoices/<int:invoice_id>/facturae.xml")
def invoice_facturae(invoice_id: int) -> Any:
    """The issued invoice's Facturae 3.2.2 (signed when a certificate is configured)."""
    credentials = signing_credentials(current_runtime().services)
    with sessions()() as s:
        invoice = _invoice(s, invoice_id)
        if invoice.number is None:
            abort(404)  # a draft has no Facturae yet
        try:
            document = exports.facturae_xml(invoice, credentials)
        except InvoicingError as exc:
            flash(refusal(exc), "error")
            return redirect(url_for("invoices.invoice_detail", invoice_id=invoice_id))
    response = Response(document, mimetype="application/xml")
    name = pdf.filename(invoice).removesuffix(".pdf") + ".xml"  # safe characters only
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def pdf_response(document: bytes, name: str) -> Response:
    """A PDF to save: `name` is made of safe characters (see invoicing.pdf.filename)."""
    response = Response(document, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
