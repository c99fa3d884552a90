"""People read quotes, orders and delivery notes and convert them, all or part, down the chain."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from invoicing.models import Invoice, InvoiceLine
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import csrf, signed_in


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def path_of(response) -> str:
    return urlsplit(response.headers["Location"]).path


def make_document(rt, kind: str = "quote") -> int:
    """10 hours of consulting at 95 € and 1 licence at 770,50 €, for Acme."""
    with rt.sessions.begin() as s:
        return (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData(name="Acme Soluciones SL", tax_id="B12345674"),
                lines=[
                    LineData("Consultoría (horas)", "10", "95.00", "21", sku="CONS-H"),
                    LineData("Licencia ERP anual", "1", "770.50", "21", sku="LIC-ERP"),
                ],
                kind=kind,
            )
            .invoice.id
        )


def line_ids(rt, doc_id: int) -> list[int]:
    with rt.sessions() as s:
        return list(
            s.scalars(
                select(InvoiceLine.id)
                .where(InvoiceLine.invoice_id == doc_id)
                .order_by(InvoiceLine.position)
            )
        )


def convert(client, path: str, to: str, quantities: dict[int, str], **extra):
    data = {"to": to, "csrf_token": csrf(client)}
    data.update({f"qty-{line_id}": q for line_id, q in quantities.items()})
    return client.post(f"{path}/convert", data=data, **extra)


def left(page: str, to: str, position: int) -> str:
    match = re.search(rf'data-testid="left-{to}-{position}">([^<]*)<', page)
    assert match, f"no 'left' cell for {to} line {position}"
    return match.group(1)


def quantity_input(page: str, to: str, line_id: int) -> str:
    match = re.search(rf'<input[^>]*id="qty-{to}-{line_id}"[^>]*>', page)
    assert match, f"no quantity input for {to} line {line_id}"
    return match.group(0)


# --- lists and pages -------------------------------------------------------------------------


def test_the_document_lists_show_each_kind_in_spanish_and_in_english(rt, client):
    signed_in(rt, client)
    quote = make_document(rt, "quote")
    order = make_document(rt, "order")
    note = make_document(rt, "delivery_note")

    quotes = text(client.get("/ui/documents/quotes"))
    assert "<h1>Documentos: Presupuestos</h1>" in quotes
    assert f'href="/ui/documents/quotes/{quote}"' in quotes
    assert f"/ui/documents/orders/{order}" not in quotes
    assert "Acme Soluciones SL" in quotes and "2.081,81\u00a0€" in quotes

    orders = text(client.get("/ui/documents/orders?lang=en"))
    assert "<h1>Documents: Orders</h1>" in orders
    assert f'href="/ui/documents/orders/{order}"' in orders
    assert "€2,081.81" in orders

    notes = text(client.get("/ui/documents/delivery-notes?lang=es"))
    assert "Albaranes" in notes and f'href="/ui/documents/delivery-notes/{note}"' in notes
    assert path_of(client.get("/ui/documents")) == "/ui/documents/quotes"
    assert client.get("/ui/documents/invoices").status_code == 404


def test_a_quote_page_shows_customer_lines_totals_and_all_that_is_left(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    first, second = line_ids(rt, quote)

    page = text(client.get(f"/ui/documents/quotes/{quote}"))

    assert "<h1>Presupuesto #" in page
    assert "Acme Soluciones SL" in page and "B12345674" in page
    assert "Consultoría (horas)" in page and "Licencia ERP anual" in page
    assert 'data-testid="document-total">2.081,81\u00a0€' in page
    assert "Convertir en pedido" in page and "Convertir en factura" in page
    assert (left(page, "order", 1), left(page, "order", 2)) == ("10", "1")
    assert 'value="10"' in quantity_input(page, "order", first)
    assert 'value="1"' in quantity_input(page, "invoice", second)
    assert 'aria-label="Cantidad a convertir de la línea 1: Consultoría (horas)"' in page


def test_a_document_page_in_english(rt, client):
    signed_in(rt, client)
    order = make_document(rt, "order")

    page = text(client.get(f"/ui/documents/orders/{order}?lang=en"))

    assert "<h1>Order #" in page
    assert "Convert into a delivery note" in page and "Create draft invoice" in page
    assert "€2,081.81" in page


def test_a_document_asked_for_under_another_kind_goes_to_its_own_page(rt, client):
    signed_in(rt, client)
    order = make_document(rt, "order")

    assert path_of(client.get(f"/ui/documents/quotes/{order}")) == f"/ui/documents/orders/{order}"
    assert client.get("/ui/documents/quotes/999").status_code == 404


# --- converting ------------------------------------------------------------------------------


def test_a_quote_converted_to_orders_in_two_parts_has_nothing_left_to_order(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, licence = line_ids(rt, quote)
    path = f"/ui/documents/quotes/{quote}"

    first = convert(client, path, "order", {hours: "4", licence: "0"})
    assert first.status_code == 302
    order_path = path_of(first)
    assert re.fullmatch(r"/ui/documents/orders/\d+", order_path)
    order_page = text(client.get(order_path))
    assert "Pedido creado." in order_page
    assert f'href="{path}">Presupuesto #{quote}</a>' in order_page  # procede de
    assert "Licencia ERP anual" not in order_page.split("<table>")[1]  # skipped with 0
    assert 'data-testid="document-total">459,80\u00a0€' in order_page  # 4 × 95 € + 21 %
    assert f"Procede de presupuesto {quote}" in order_page  # the note, in Spanish

    page = text(client.get(path))
    assert (left(page, "order", 1), left(page, "order", 2)) == ("6", "1")
    assert 'value="6"' in quantity_input(page, "order", hours)
    assert f'href="{order_path}">Pedido #' in page  # convertido en

    second = convert(client, path, "order", {hours: "6", licence: "1"})
    assert second.status_code == 302

    page = text(client.get(path))
    assert "Ya no queda nada por pasar a pedido: todas las cantidades están en pedidos." in page
    assert 'name="to" value="order"' not in page
    assert (left(page, "invoice", 1), left(page, "invoice", 2)) == ("10", "1")
    with rt.sessions() as s:
        orders = s.scalars(select(Invoice).where(Invoice.kind == "order")).all()
        assert [o.converted_from_id for o in orders] == [quote, quote]
        assert sorted(str(line.quantity.normalize()) for o in orders for line in o.lines) == [
            "1",
            "4",
            "6",
        ]


def test_asking_for_more_than_is_left_is_explained_next_to_the_line_and_keeps_the_form(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, licence = line_ids(rt, quote)
    path = f"/ui/documents/quotes/{quote}"
    convert(client, path, "order", {hours: "4", licence: "0"})

    response = convert(client, path, "order", {hours: "7,5", licence: "1"})

    assert response.status_code == 422
    page = text(response)
    assert "No se ha convertido: revisa las cantidades marcadas." in page
    field = quantity_input(page, "order", hours)
    assert 'value="7,5"' in field and 'aria-invalid="true"' in field
    assert "Debe ser más de 0 y como mucho 6." in page
    assert 'value="1"' in quantity_input(page, "order", licence)
    with rt.sessions() as s:
        assert len(s.scalars(select(Invoice).where(Invoice.kind == "order")).all()) == 1


def test_a_quantity_that_is_not_a_number_is_explained(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, _ = line_ids(rt, quote)

    response = convert(client, f"/ui/documents/quotes/{quote}", "order", {hours: "diez"})

    assert response.status_code == 422
    page = text(response)
    assert "Escribe una cantidad como 2 o 2,5" in page
    assert 'value="diez"' in quantity_input(page, "order", hours)


def test_converting_with_every_quantity_at_zero_or_empty_is_explained(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, licence = line_ids(rt, quote)

    response = convert(client, f"/ui/documents/quotes/{quote}", "order", {hours: "0", licence: ""})

    assert response.status_code == 422
    assert "escribe al menos una cantidad mayor que 0" in text(response)
    with rt.sessions() as s:
        assert s.scalars(select(Invoice).where(Invoice.kind == "order")).all() == []


def test_a_kind_the_document_cannot_become_is_explained(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, _ = line_ids(rt, quote)

    response = convert(client, f"/ui/documents/quotes/{quote}", "delivery_note", {hours: "1"})

    assert response.status_code == 422
    assert "Este documento no se puede convertir en ese tipo." in text(response)


def test_an_order_becomes_a_delivery_note_and_then_an_invoice_shown_on_its_page(rt, client):
    signed_in(rt, client)
    order = make_document(rt, "order")
    hours, _ = line_ids(rt, order)

    to_note = convert(client, f"/ui/documents/orders/{order}", "delivery_note", {hours: "10"})
    note_path = path_of(to_note)
    assert re.fullmatch(r"/ui/documents/delivery-notes/\d+", note_path)
    note_page = text(client.get(note_path))
    assert "Albarán creado." in note_page
    assert f'href="/ui/documents/orders/{order}">Pedido #{order}</a>' in note_page
    note = int(note_path.rsplit("/", 1)[1])
    [note_line] = line_ids(rt, note)

    to_invoice = convert(client, note_path, "invoice", {note_line: "10"}, follow_redirects=True)

    assert to_invoice.status_code == 200
    assert re.fullmatch(r"/ui/invoices/\d+", to_invoice.request.path)
    page = text(to_invoice)
    assert "Factura creada en borrador." in page
    assert "Factura en borrador" in page
    assert 'data-testid="invoice-total">1.149,50\u00a0€' in page  # 10 × 95 € + 21 %
    note_page = text(client.get(note_path))
    assert "Ya no queda nada por facturar" in note_page
    assert f'href="{to_invoice.request.path}">Factura #' in note_page
    # The order's hours are invoiced through the note; its licence is still to deliver.
    order_page = text(client.get(f"/ui/documents/orders/{order}"))
    assert (left(order_page, "invoice", 1), left(order_page, "invoice", 2)) == ("0", "1")
    assert (left(order_page, "delivery_note", 1), left(order_page, "delivery_note", 2)) == (
        "0",
        "1",
    )


def test_a_conversion_posted_with_a_forged_token_is_refused(rt, client):
    signed_in(rt, client)
    quote = make_document(rt)
    hours, _ = line_ids(rt, quote)

    response = client.post(
        f"/ui/documents/quotes/{quote}/convert",
        data={"to": "order", f"qty-{hours}": "1", "csrf_token": "forged"},
    )

    assert response.status_code == 400
    with rt.sessions() as s:
        assert s.scalars(select(Invoice).where(Invoice.kind == "order")).all() == []


@pytest.mark.parametrize("path", ["/ui/documents/quotes/1", "/ui/documents/orders"])
def test_document_pages_ask_to_sign_in_first(rt, client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert path_of(response) == "/ui/login"
