"""The operation date (art. 6.1 g RD 1619/2012), stated when it is not the issue date."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from lxml import etree
from pypdf import PdfReader

from invoicing import chain, documents, exports, pdf
from invoicing import verifactu as vf
from invoicing.errors import InvalidDocumentError
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import Invoicing, LineData
from tests.factories import ACME, make_issuer

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
LINE = LineData(description="Mesa de oficina", quantity=2, unit_price="150", tax_rate=21)


def _draft(rt, **kwargs) -> int:
    with rt.sessions.begin() as s:
        return Invoicing(s).create_draft_invoice(customer=ACME, lines=[LINE], **kwargs).invoice.id


def test_an_operation_date_other_than_the_issue_date_is_on_every_document(rt):
    make_issuer(rt)
    invoice_id = _draft(rt, operation_date="2026-06-15")
    with rt.sessions.begin() as s:
        issue(s, invoice_id, now=NOW)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        record = etree.fromstring(chain.alta_of(invoice).xml)
        assert record.findtext(f"{{{vf.NS_SUM1}}}FechaOperacion") == "15-06-2026"
        vf.validate(chain.document_for(s, invoice))
        facturae = etree.fromstring(exports.facturae_xml(invoice))
        assert facturae.findtext("Invoices/Invoice/InvoiceIssueData/OperationDate") == "2026-06-15"
        text = " ".join(PdfReader(io.BytesIO(pdf.pdf_of(invoice))).pages[0].extract_text().split())
    assert "Fecha de expedición 01/07/2026" in text and "Fecha de operación 15/06/2026" in text


def test_the_same_day_as_the_issue_is_not_repeated(rt):
    make_issuer(rt)
    invoice_id = _draft(rt, operation_date="2026-07-01")
    with rt.sessions.begin() as s:
        issue(s, invoice_id, now=NOW)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert "FechaOperacion" not in chain.alta_of(invoice).xml
        assert b"OperationDate" not in exports.facturae_xml(invoice)


@pytest.mark.parametrize("value", ["15/06/2026", "1999-01-01", "2099-01-01"])
def test_an_operation_date_that_is_not_a_plausible_date_is_refused(rt, value):
    with pytest.raises(InvalidDocumentError) as refused:
        _draft(rt, operation_date=value)
    [(field, message)] = refused.value.errors
    assert field == "operation_date" and "año-mes-día" in message.es


def test_an_invoice_from_delivery_notes_states_the_day_the_goods_went_out(rt):
    make_issuer(rt)
    note = _draft(rt, kind="delivery_note")
    with rt.sessions.begin() as s:
        s.get_one(Invoice, note).created_at = datetime(2026, 6, 20, 23, 30, tzinfo=UTC)
    with rt.sessions.begin() as s:
        invoice = documents.convert(s, [note], "invoice")
        # 23:30 UTC on 20 June is already 21 June in Spain.
        assert invoice.operation_date == date(2026, 6, 21)
