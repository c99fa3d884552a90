"""Drafts are editable; issued documents, and documents others were made from, are not."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import documents
from invoicing.errors import DocumentStateError
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import make_api_key, make_draft, make_issuer


def edit(rt, invoice_id: int, **changes) -> Invoice:
    with rt.sessions.begin() as s:
        return Invoicing(s).edit_draft(invoice_id, **changes)


def test_editing_a_draft_replaces_its_lines_and_totals(rt):
    draft = make_draft(rt)
    edit(
        rt,
        draft,
        lines=[
            LineData(description="Soporte anual", quantity=1, unit_price="1000", tax_rate=21),
            LineData(description="Libro", quantity=3, unit_price="20", tax_rate=4),
        ],
        notes="  ",
    )
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, draft)
        assert [(line.position, line.description) for line in invoice.lines] == [
            (1, "Soporte anual"),
            (2, "Libro"),
        ]
        assert [(t.rate, t.amount) for t in invoice.taxes] == [
            (Decimal("21"), Decimal("210.00")),
            (Decimal("4"), Decimal("2.40")),
        ]
        assert (invoice.base_total, invoice.total) == (Decimal("1060.00"), Decimal("1272.40"))
        assert invoice.notes is None


def test_a_draft_can_change_customer_but_an_issued_invoice_nothing(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    edit(
        rt,
        draft,
        customer=CustomerData(
            name="Juan Español",
            tax_id="12345678Z",
            street="Calle Luna 3",
            postal_code="28004",
            city="Madrid",
        ),
    )
    with rt.sessions() as s:
        assert s.get_one(Invoice, draft).customer.tax_id == "12345678Z"
    with rt.sessions.begin() as s:
        issue(s, draft)
    with pytest.raises(DocumentStateError, match="only drafts change"):
        edit(rt, draft, notes="tarde")


def test_lines_of_documents_tied_by_conversions_do_not_change(rt):
    with rt.sessions.begin() as s:
        quote = (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData(name="Acme Soluciones SL", tax_id="B12345674"),
                kind="quote",
                lines=[LineData(description="Silla", quantity=4, unit_price="50", tax_rate=21)],
            )
            .invoice.id
        )
        order = documents.convert(s, [quote], "order").id
    new_lines = [LineData(description="Mesa", quantity=1, unit_price="9", tax_rate=21)]
    with pytest.raises(DocumentStateError, match="documents were made from this one"):
        edit(rt, quote, lines=new_lines)
    with pytest.raises(DocumentStateError, match="convert again"):
        edit(rt, order, lines=new_lines)
    assert edit(rt, order, notes="entrega urgente").notes == "entrega urgente"


def test_the_api_patches_drafts_and_explains_refusals(rt, client):
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    draft = make_draft(rt)

    patched = client.patch(
        f"/api/v1/invoices/{draft}",
        headers=headers,
        json={
            "lines": [{"description": "Cuota", "quantity": 2, "unit_price": "10", "tax_rate": 21}]
        },
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["totals"]["total"] == "24.20"

    bad = client.patch(
        f"/api/v1/invoices/{draft}",
        headers=headers,
        json={"lines": [{"quantity": "x", "sku": "A"}]},
    )
    assert (bad.status_code, bad.json["field"]) == (422, "lines[0].quantity")
    unknown = client.patch(f"/api/v1/invoices/{draft}", headers=headers, json={"total": 1})
    assert (unknown.status_code, unknown.json["field"]) == (422, "total")
    assert (
        client.patch(f"/api/v1/quotes/{draft}", headers=headers, json={"notes": "x"}).status_code
        == 404
    )
    make_issuer(rt)
    client.post(f"/api/v1/invoices/{draft}/issue", headers=headers)
    issued = client.patch(f"/api/v1/invoices/{draft}", headers=headers, json={"notes": "x"})
    assert issued.status_code == 409 and "only drafts change" in issued.json["message"]
