"""An issued invoice keeps the issuer's and customer's data as billed, whatever is edited later."""

from __future__ import annotations

import io

from lxml import etree
from pypdf import PdfReader

from invoicing import exports, pdf
from invoicing.issuing import IssuerData, configure_issuer, issue
from invoicing.models import Customer, Invoice
from tests.factories import ISSUER, make_draft, make_issuer


def test_renaming_the_customer_and_moving_the_issuer_do_not_change_an_issued_invoice(rt):
    make_issuer(rt)
    issued_id = make_draft(rt)
    with rt.sessions.begin() as s:
        issue(s, issued_id)
    draft_id = make_draft(rt)
    with rt.sessions.begin() as s:
        s.get_one(Invoice, issued_id).customer.name = "Acme Renombrada SA"
        configure_issuer(s, IssuerData(**{**ISSUER, "street": "Paseo Nuevo 99"}))

    with rt.sessions() as s:
        issued = s.get_one(Invoice, issued_id)
        draft = s.get_one(Invoice, draft_id)
        assert issued.billed_customer.name == "Acme Soluciones SL"
        assert draft.billed_customer.name == "Acme Renombrada SA"  # drafts follow the record
        assert s.get_one(Customer, issued.customer_id).name == "Acme Renombrada SA"

        xml = etree.fromstring(exports.facturae_xml(issued))
        assert xml.findtext(".//BuyerParty//CorporateName") == "Acme Soluciones SL"
        assert xml.findtext(".//SellerParty//Address") == "Gran Vía 1"
        text = "".join(
            page.extract_text()
            for page in PdfReader(
                io.BytesIO(pdf.invoice_pdf(issued, "https://example.invalid/qr"))
            ).pages
        )
    assert "Acme Soluciones SL" in text and "Acme Renombrada" not in text
    assert "Gran Vía 1" in text and "Paseo Nuevo" not in text
