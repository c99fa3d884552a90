"""Quote → order → partial delivery notes → invoice, without ever billing a unit twice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import delete, select

from connector.models import ApiIdempotency
from invoicing import corrections, documents
from invoicing.documents import Take
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import Invoicing, LineData
from tests.factories import ACME, make_api_key, make_draft, make_issuer


def quote(rt) -> int:
    with rt.sessions.begin() as s:
        return (
            Invoicing(s)
            .create_draft_invoice(
                customer=ACME,
                kind="quote",
                source="webhook",
                external_ref="D-9",
                lines=[
                    LineData(description="Silla", quantity=10, unit_price="50", tax_rate=21),
                    LineData(description="Mesa", quantity=2, unit_price="200", tax_rate=21),
                ],
            )
            .invoice.id
        )


def convert(rt, ids, to, takes=None) -> Invoice:
    with rt.sessions.begin() as s:
        return documents.convert(s, ids, to, takes)


def lines_of(rt, doc_id) -> list[tuple[str, Decimal]]:
    with rt.sessions() as s:
        return [
            (line.description, line.quantity.normalize())
            for line in s.get_one(Invoice, doc_id).lines
        ]


def test_partial_deliveries_add_up_and_are_invoiced_once(rt):
    order = convert(rt, [quote(rt)], "order")
    with rt.sessions() as s:
        silla, mesa = (line.id for line in s.get_one(Invoice, order.id).lines)

    first = convert(rt, [order.id], "delivery_note", [Take(silla, "6"), Take(mesa, 2)])
    second = convert(rt, [order.id], "delivery_note")  # everything left: 4 chairs
    assert lines_of(rt, second.id) == [("Silla", Decimal(4))]
    with pytest.raises(DocumentStateError, match="converted already"):
        convert(rt, [order.id], "delivery_note")

    invoice = convert(rt, [first.id, second.id], "invoice")
    assert lines_of(rt, invoice.id) == [("Silla", 6), ("Mesa", 2), ("Silla", 4)]
    assert invoice.base_total == Decimal("900.00") and invoice.total == Decimal("1089.00")
    # The order was invoiced through its delivery notes: not again directly.
    with pytest.raises(DocumentStateError, match="converted already"):
        convert(rt, [order.id], "invoice")


def test_asking_for_more_than_is_left_names_the_line_and_what_is_left(rt):
    order = convert(rt, [quote(rt)], "order")
    with rt.sessions() as s:
        silla = s.get_one(Invoice, order.id).lines[0].id
    convert(rt, [order.id], "delivery_note", [Take(silla, 7)])

    with pytest.raises(InvalidDocumentError) as exc:
        convert(rt, [order.id], "delivery_note", [Take(silla, 4), Take(999, 1)])
    assert exc.value.errors == [
        ("lines[0].quantity", "must be more than 0 and at most the 3 left of line 1 (Silla)"),
        ("lines[1].line_id", "line 999 is not in these documents"),
    ]


def test_documents_only_become_the_next_kinds(rt):
    quote_id = quote(rt)
    invoice = convert(rt, [quote_id], "invoice")
    with pytest.raises(InvalidDocumentError, match="an invoice becomes nothing else"):
        convert(rt, [invoice.id], "order")
    with pytest.raises(DocumentStateError, match="converted already"):
        convert(rt, [quote_id], "invoice")
    order = convert(rt, [quote_id], "order")  # the quote may still become an order
    with pytest.raises(InvalidDocumentError, match="only delivery notes are invoiced together"):
        convert(rt, [order.id, order.id], "invoice")


def test_a_cancelled_invoice_gives_its_quantities_back(rt):
    make_issuer(rt)
    quote_id = quote(rt)
    invoice = convert(rt, [quote_id], "invoice")
    with rt.sessions.begin() as s:
        issue(s, invoice.id)
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice.id, "emitida por error")
    again = convert(rt, [quote_id], "invoice")
    assert lines_of(rt, again.id) == [("Silla", 10), ("Mesa", 2)]


def test_the_api_creates_quotes_and_converts_them_showing_what_is_left(rt, client):
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    created = client.post(
        "/api/v1/quotes",
        headers=headers,
        json={
            "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
            "lines": [{"description": "Silla", "quantity": 10, "unit_price": "50", "tax_rate": 21}],
        },
    )
    assert created.status_code == 201 and created.json["kind"] == "quote"
    quote_id, line_id = created.json["id"], created.json["lines"][0]["id"]
    assert client.get(f"/api/v1/invoices/{quote_id}", headers=headers).status_code == 404

    order = client.post(
        f"/api/v1/quotes/{quote_id}/convert",
        headers=headers,
        json={"to": "order", "lines": [{"line_id": line_id, "quantity": 3}]},
    )
    assert order.status_code == 201, order.json
    assert (order.json["kind"], order.json["converted_from"]) == ("order", quote_id)
    shown = client.get(f"/api/v1/quotes/{quote_id}", headers=headers).json
    assert shown["remaining"]["order"] == {str(line_id): "7"}

    bad = client.post(
        f"/api/v1/orders/{order.json['id']}/convert", headers=headers, json={"to": "quote"}
    )
    assert (bad.status_code, bad.json["field"]) == (422, "to")
    note = client.post(
        f"/api/v1/orders/{order.json['id']}/convert", headers=headers, json={"to": "delivery_note"}
    ).json
    invoice = client.post(
        "/api/v1/invoices/from-delivery-notes",
        headers=headers,
        json={"delivery_note_ids": [note["id"]]},
    )
    assert invoice.status_code == 201 and invoice.json["totals"]["base"] == "150.00"
    listed = client.get("/api/v1/delivery-notes", headers=headers).json
    assert [d["id"] for d in listed["items"]] == [note["id"]]


def test_a_flow_may_start_with_a_quote_and_convert_it_once_per_step(rt):
    import logging

    from actions.invoicing import convert_document, create_draft_invoice
    from connector.spec import ActionContext

    def ctx(s, key):
        return ActionContext(key, logging.getLogger("test"), s, rt.services)

    data = {
        "kind": "quote",
        "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
        "lines": [{"description": "Silla", "quantity": 4, "unit_price": "50", "tax_rate": 21}],
        "source": "crm",
        "external_ref": "D-3",
    }
    with rt.sessions.begin() as s:
        quote = create_draft_invoice(ctx(s, "k1"), data)
    assert quote["kind"] == "quote"
    with rt.sessions.begin() as s:
        first = convert_document(ctx(s, "k2"), {"document_id": quote["invoice_id"], "to": "order"})
    with rt.sessions.begin() as s:
        again = convert_document(ctx(s, "k2"), {"document_id": quote["invoice_id"], "to": "order"})
    assert (first["kind"], first["created"], again["created"]) == ("order", True, False)
    assert again["document_id"] == first["document_id"]


def test_an_api_conversion_repeated_with_its_idempotency_key_makes_one_draft(rt, client):
    """Even when the first answer could not be stored (the repeat then reaches the core)."""
    headers = {"Authorization": f"Bearer {make_api_key(rt)}", "Idempotency-Key": "conv-1"}
    quote_id = quote(rt)

    first = client.post(f"/api/v1/quotes/{quote_id}/convert", headers=headers, json={"to": "order"})
    assert first.status_code == 201
    with rt.sessions.begin() as s:  # as if storing the answer had failed
        s.execute(delete(ApiIdempotency))
    again = client.post(f"/api/v1/quotes/{quote_id}/convert", headers=headers, json={"to": "order"})

    assert again.json["id"] == first.json["id"]
    with rt.sessions() as s:
        orders = s.scalars(select(Invoice).where(Invoice.kind == "order")).all()
    assert len(orders) == 1


def test_the_conversion_refusals_people_meet_carry_their_spanish(rt):
    quote = make_draft(rt, kind="quote")
    with rt.sessions.begin() as s:
        documents.convert(s, [quote], "order")
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError) as nothing_left:
        documents.convert(s, [quote], "order")
    said = nothing_left.value.args[0]
    assert str(said) == "everything in it has been converted already"  # the API's, unchanged
    assert said.es.startswith("Ya se ha convertido todo")
