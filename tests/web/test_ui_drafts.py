"""Drafts are reviewed before they are issued: customer, lines (amounts typed the Spanish way),
discount and notes edited, or the draft deleted; issuing and cancelling say what will happen;
the issued invoice's Facturae downloads from its page."""

from __future__ import annotations

from decimal import Decimal

from flask import g
from lxml import etree

from invoicing import facturae
from invoicing.issuing import issue
from invoicing.models import Invoice
from tests.factories import csrf, make_draft, make_issuer, signed_in
from web.ui.common import typed_amount


def edit(client, invoice_id: int, **fields: str):
    return client.post(
        f"/ui/invoices/{invoice_id}/edit", data={"csrf_token": csrf(client), **fields}
    )


CUSTOMER = {
    "customer_name": "Acme Soluciones SL",
    "customer_tax_id": "B12345674",
    "customer_street": "Calle Mayor 1",
    "customer_postal_code": "28013",
    "customer_city": "Madrid",
    "customer_province": "Madrid",
}


def test_a_draft_is_edited_with_amounts_typed_the_spanish_way(rt, client):
    signed_in(rt, client, "editor")
    draft = make_draft(rt)
    page = client.get(f"/ui/invoices/{draft}/edit")
    assert page.status_code == 200 and 'name="line-0-unit_price" ' in page.text

    saved = edit(
        client,
        draft,
        **CUSTOMER,
        **{
            "line-0-description": "Consultoría (horas)",
            "line-0-quantity": "20",
            "line-0-unit_price": "1.500,50",
            "line-0-discount_percent": "10",
            "line-0-tax_rate": "21",
            "line-1-description": "",  # the second line emptied: removed
            "line-3-description": "Formación",  # a blank row filled in: added
            "line-3-quantity": "2",
            "line-3-unit_price": "450",
            "line-3-tax_rate": "21",
            "discount_percent": "5",
            "notes": "Pedido 77",
        },
    )

    assert saved.status_code == 302, saved.text
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, draft)
        assert [(line.description, line.unit_price) for line in invoice.lines] == [
            ("Consultoría (horas)", Decimal("1500.50")),
            ("Formación", Decimal("450")),
        ]
        assert invoice.discount_percent == Decimal("5") and invoice.notes == "Pedido 77"


def test_a_bad_line_is_refused_keeping_what_was_typed(rt, client):
    signed_in(rt, client, "editor")
    draft = make_draft(rt)
    answer = edit(
        client,
        draft,
        **CUSTOMER,
        **{"line-0-description": "Algo", "line-0-quantity": "0", "line-0-unit_price": "10,5"},
    )
    assert answer.status_code == 422
    assert "No se ha guardado nada" in answer.text and 'value="10.5"' not in answer.text
    assert 'value="10,5"' in answer.text  # as typed
    with rt.sessions() as s:
        assert len(s.get_one(Invoice, draft).lines) == 2  # unchanged


def test_a_draft_is_deleted_but_an_issued_invoice_is_not(rt, client):
    signed_in(rt, client, "editor")
    make_issuer(rt)
    draft, kept = make_draft(rt), make_draft(rt)
    with rt.sessions.begin() as s:
        issue(s, kept)

    gone = client.post(f"/ui/invoices/{draft}/delete", data={"csrf_token": csrf(client)})
    refused = client.post(
        f"/ui/invoices/{kept}/delete", data={"csrf_token": csrf(client)}, follow_redirects=True
    )

    assert gone.headers["Location"] == "/ui/invoices"
    assert "Solo se borran los borradores" in refused.text  # the core refusal, in Spanish
    assert "only drafts" not in refused.text
    with rt.sessions() as s:
        assert s.get(Invoice, draft) is None and s.get(Invoice, kept) is not None
    assert client.get(f"/ui/invoices/{kept}/edit").text.count("Ya no es un borrador") == 1


def test_issuing_and_cancelling_ask_first_and_the_facturae_downloads(rt, client):
    signed_in(rt, client, "editor")
    make_issuer(rt)
    draft = make_draft(rt)
    page = client.get(f"/ui/invoices/{draft}").text
    assert "data-confirm=" in page and "solo se corrige con una rectificativa" in page
    assert "Descargar Facturae" not in page  # a draft has none yet
    assert client.get(f"/ui/invoices/{draft}/facturae.xml").status_code == 404
    with rt.sessions.begin() as s:
        issue(s, draft)

    page = client.get(f"/ui/invoices/{draft}").text
    xml = client.get(f"/ui/invoices/{draft}/facturae.xml")

    assert "se puede deshacer" in page  # the cancel form's confirmation
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert xml.headers["Content-Disposition"].startswith('attachment; filename="')
    facturae.validate(xml.data)
    assert etree.fromstring(xml.data).findtext(".//InvoiceTotal") == "3001.41"


def test_amounts_are_read_as_people_type_them_in_each_language(app):
    with app.test_request_context():
        g.lang = "es"
        assert [typed_amount(t) for t in ("1.500,50", "1500,5", "1.500", "12.5", " 3 ")] == [
            "1500.50",
            "1500.5",
            "1500",
            "12.5",
            "3",
        ]
        g.lang = "en"
        assert [typed_amount(t) for t in ("1,500.50", "1500.5")] == ["1500.50", "1500.5"]


def test_the_core_refusals_of_a_form_are_shown_in_the_reader_s_language(rt, client):
    signed_in(rt, client, "editor")
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s:
        issue(s, draft)
    too_much = client.post(
        f"/ui/invoices/{draft}/payments",
        data={"amount": "9.999,00", "csrf_token": csrf(client)},
        follow_redirects=True,
    )
    again = client.post(f"/ui/invoices/{draft}/edit", data={**CUSTOMER, "csrf_token": csrf(client)})
    assert "es más de lo que queda por cobrar" in too_much.text
    assert again.status_code == 422 and "Ya no es un borrador" in again.text
    english = client.post(
        f"/ui/invoices/{draft}/edit?lang=en", data={**CUSTOMER, "csrf_token": csrf(client)}
    )
    assert "It is no longer a draft" in english.text
