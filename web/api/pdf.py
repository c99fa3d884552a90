"""An invoice as PDF: issued ones with their VERI*FACTU QR, drafts watermarked."""

from __future__ import annotations

from typing import Any

from flask import Response

from invoicing import pdf
from invoicing.models import DocumentKind, Invoice
from web.api import bp, not_found, sessions


@bp.get("/invoices/<int:invoice_id>/pdf")
def invoice_pdf_document(invoice_id: int) -> Any:
    with sessions()() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None or invoice.kind != DocumentKind.INVOICE:
            raise not_found("invoice", invoice_id)
        document, name = pdf.pdf_of(invoice), pdf.filename(invoice)
    response = Response(document, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
