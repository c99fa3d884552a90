"""People find and edit customers, and keep the catalog: products and CRM code mappings."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from invoicing import catalog
from invoicing.models import Customer, Product, SkuMapping
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import csrf, make_draft, signed_in


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def make_customer(rt, name: str, tax_id: str, **fields: Any) -> int:
    with rt.sessions.begin() as s:
        result = Invoicing(s).find_or_create_customer(
            CustomerData(name=name, tax_id=tax_id, **fields)
        )
        return result.customer.id


def make_quote(rt, tax_id: str = "B12345674") -> int:
    with rt.sessions.begin() as s:
        return (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData(name="Acme Soluciones SL", tax_id=tax_id),
                lines=[LineData("Formación", "3", "200.00", "21")],
                kind="quote",
            )
            .invoice.id
        )


def make_product(rt, sku: str, name: str, price: str, rate: str, cause: str | None = None):
    with rt.sessions.begin() as s:
        catalog.create_product(s, catalog.ProductData(sku, name, price, rate, cause))


ACME = {
    "name": "Acme Soluciones SL",
    "email": "facturas@acme.example",
    "street": "Calle Mayor 1",
    "postal_code": "28013",
    "city": "Madrid",
    "province": "Madrid",
}


# --- signing in ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/ui/customers", "/ui/customers/1", "/ui/products", "/ui/documents/quotes", "/ui/documents"],
)
def test_customer_and_catalog_pages_ask_to_sign_in_first(rt, client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/ui/login"


# --- customers -------------------------------------------------------------------------------


def test_the_customers_page_lists_customers_in_spanish_and_in_english(rt, client):
    signed_in(rt, client)
    make_customer(rt, "Acme Soluciones SL", "B12345674", city="Madrid")
    make_customer(rt, "Bodegas Ribera SA", "A58818501", city="Aranda de Duero")

    spanish = text(client.get("/ui/customers"))
    assert "<h1>Clientes</h1>" in spanish
    assert "Buscar por nombre o NIF" in spanish
    assert "Acme Soluciones SL" in spanish and "Bodegas Ribera SA" in spanish
    assert "Aranda de Duero" in spanish

    english = text(client.get("/ui/customers?lang=en"))
    assert "<h1>Customers</h1>" in english
    assert "Search by name or tax id" in english
    assert "Acme Soluciones SL" in english


def test_customers_are_found_by_part_of_the_name_or_of_the_tax_id(rt, client):
    signed_in(rt, client)
    make_customer(rt, "Acme Soluciones SL", "B12345674")
    make_customer(rt, "Bodegas Ribera SA", "A58818501")

    by_name = text(client.get("/ui/customers?q=ribera"))
    assert "Bodegas Ribera SA" in by_name and "Acme" not in by_name

    by_tax_id = text(client.get("/ui/customers?q=b-1234"))
    assert "Acme Soluciones SL" in by_tax_id and "Bodegas" not in by_tax_id

    nothing = text(client.get("/ui/customers?q=zzz%25"))
    assert "Ningún cliente coincide con «zzz%»." in nothing


def test_a_customer_page_shows_fiscal_data_address_and_documents(rt, client):
    signed_in(rt, client)
    invoice_id = make_draft(rt)
    quote_id = make_quote(rt)
    with rt.sessions() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.tax_id == "B12345674"))

    page = text(client.get(f"/ui/customers/{customer_id}"))

    assert "<h1>Acme Soluciones SL</h1>" in page
    assert "B12345674" in page and "CIF" in page
    assert "Calle Mayor 1, 28013, Madrid, Madrid" in page
    assert f'href="/ui/invoices/{invoice_id}"' in page
    assert '<span class="badge draft">Borrador</span>' in page
    assert "3.001,41\u00a0€" in page  # the sample deal's invoice total
    assert f'href="/ui/documents/quotes/{quote_id}"' in page
    assert "Presupuesto" in page and "726,00\u00a0€" in page


def test_editing_a_customer_saves_name_email_and_address(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    response = client.post(
        f"/ui/customers/{customer_id}",
        data={
            **ACME,
            "name": "Acme Soluciones Integrales SL",
            "email": "admin@acme.example",
            "city": "Alcalá de Henares",
            "csrf_token": csrf(client),
        },
        follow_redirects=True,
    )

    page = text(response)
    assert "Cliente guardado." in page
    assert "<h1>Acme Soluciones Integrales SL</h1>" in page
    with rt.sessions() as s:
        customer = s.get_one(Customer, customer_id)
        assert customer.name == "Acme Soluciones Integrales SL"
        assert customer.email == "admin@acme.example"
        assert customer.city == "Alcalá de Henares"
        assert customer.street == "Calle Mayor 1"


def test_a_bad_email_is_explained_next_to_the_field_and_nothing_is_saved(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    response = client.post(
        f"/ui/customers/{customer_id}",
        data={**ACME, "name": "Otro nombre", "email": "facturas.acme", "csrf_token": csrf(client)},
    )

    assert response.status_code == 422
    page = text(response)
    assert "No se ha guardado: revisa los campos marcados." in page
    email_field = page[page.index('name="email"') :]
    assert email_field.index("No es un correo electrónico válido") < email_field.index("</label>")
    assert 'value="facturas.acme"' in page  # what was typed stays in the form
    with rt.sessions() as s:
        assert s.get_one(Customer, customer_id).name == "Acme Soluciones SL"


def test_a_bad_email_is_explained_in_english_too(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    response = client.post(
        f"/ui/customers/{customer_id}?lang=en",
        data={**ACME, "email": "nope", "csrf_token": csrf(client)},
    )

    assert response.status_code == 422
    assert "Not a valid email address" in text(response)


def test_the_tax_id_and_country_cannot_be_changed_through_the_form(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    page = text(client.get(f"/ui/customers/{customer_id}"))
    assert 'name="tax_id" id="f-tax_id" value="B12345674" readonly' in page

    response = client.post(
        f"/ui/customers/{customer_id}",
        data={**ACME, "tax_id": "A58818501", "country": "FR", "csrf_token": csrf(client)},
    )

    assert response.status_code == 422
    page = text(response)
    assert "El NIF identifica al cliente y no se puede cambiar" in page
    assert "El país va con el NIF y no se puede cambiar." in page
    with rt.sessions() as s:
        customer = s.get_one(Customer, customer_id)
        assert (customer.tax_id, customer.country) == ("B12345674", "ES")


def test_an_empty_name_is_explained_next_to_the_field(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    response = client.post(
        f"/ui/customers/{customer_id}",
        data={**ACME, "name": "   ", "csrf_token": csrf(client)},
    )

    assert response.status_code == 422
    name_field = text(response).split('name="name"', 1)[1].split("</label>", 1)[0]
    assert "Es obligatorio." in name_field


def test_an_unknown_customer_answers_404(rt, client):
    signed_in(rt, client)

    assert client.get("/ui/customers/999").status_code == 404


def test_a_customer_form_with_a_forged_token_is_refused(rt, client):
    signed_in(rt, client)
    customer_id = make_customer(rt, "Acme Soluciones SL", "B12345674")

    response = client.post(
        f"/ui/customers/{customer_id}", data={**ACME, "name": "Nuevo", "csrf_token": "forged"}
    )

    assert response.status_code == 400
    with rt.sessions() as s:
        assert s.get_one(Customer, customer_id).name == "Acme Soluciones SL"


# --- catalog ---------------------------------------------------------------------------------


def test_the_catalog_lists_products_and_mappings_in_spanish_and_in_english(rt, client):
    signed_in(rt, client)
    make_product(rt, "CONS-H", "Consultoría (horas)", "95.5", "21")
    with rt.sessions.begin() as s:
        catalog.map_code(s, "hubspot", "PRD-77", "CONS-H")

    spanish = text(client.get("/ui/products"))
    assert "<h1>Catálogo</h1>" in spanish
    assert "Consultoría (horas)" in spanish
    assert "95,50" in spanish and "21 %" in spanish
    assert "Códigos del CRM" in spanish and "hubspot" in spanish and "PRD-77" in spanish

    english = text(client.get("/ui/products?lang=en"))
    assert "<h1>Catalog</h1>" in english
    assert "95.50" in english
    assert "CRM codes" in english and "Price excl. VAT" in english


def test_creating_a_product_lists_it_and_says_so(rt, client):
    signed_in(rt, client)

    response = client.post(
        "/ui/products",
        data={
            "sku": "LIC-ERP",
            "name": "Licencia ERP anual",
            "unit_price": "1.770,50",  # typed the Spanish way
            "tax_rate": "21",
            "exemption_cause": "",
            "csrf_token": csrf(client),
        },
        follow_redirects=True,
    )

    page = text(response)
    assert "Producto creado." in page
    assert "Licencia ERP anual" in page and "1770,50" in page.replace(".", "")
    with rt.sessions() as s:
        product = s.scalars(select(Product)).one()
        assert (str(product.unit_price.normalize()), product.tax_rate) == ("1770.5", 21)
        assert product.exemption_cause is None
        assert product.service is False


def test_a_service_is_marked_on_the_product_form(rt, client):
    signed_in(rt, client)
    form = {
        "sku": "MONTAJE",
        "name": "Montaje en tienda",
        "unit_price": "50",
        "tax_rate": "21",
        "exemption_cause": "",
        "service": "on",
        "csrf_token": csrf(client),
    }

    page = text(client.get("/ui/products"))
    assert "Es un servicio (no un bien)" in page and "recargo de equivalencia" in page
    client.post("/ui/products", data=form)

    with rt.sessions() as s:
        assert s.scalars(select(Product.service)).one() is True


def test_a_product_with_a_rate_that_is_not_spanish_iva_is_explained_next_to_the_field(rt, client):
    signed_in(rt, client)

    response = client.post(
        "/ui/products",
        data={
            "sku": "X-1",
            "name": "Algo",
            "unit_price": "10",
            "tax_rate": "7",
            "csrf_token": csrf(client),
        },
    )

    assert response.status_code == 422
    page = text(response)
    rate_field = page.split('name="tax_rate"', 1)[1].split("</label>", 1)[0]
    assert "El IVA debe ser 21, 10, 4 o 0 %." in rate_field
    assert 'value="X-1"' in page  # the form keeps what was typed
    with rt.sessions() as s:
        assert s.scalars(select(Product)).all() == []


def test_a_bad_price_and_an_existing_sku_are_explained(rt, client):
    signed_in(rt, client)
    make_product(rt, "CONS-H", "Consultoría (horas)", "95", "21")
    form = {"name": "Otra", "tax_rate": "21", "csrf_token": csrf(client)}

    bad_price = text(client.post("/ui/products", data={**form, "sku": "N", "unit_price": "-3"}))
    assert "Escribe un precio sin IVA, no negativo" in bad_price

    taken = text(client.post("/ui/products", data={**form, "sku": "CONS-H", "unit_price": "1"}))
    assert "Ya hay un producto con este SKU." in taken


def test_an_exempt_product_shows_the_legal_text_of_its_cause(rt, client):
    signed_in(rt, client)

    client.post(
        "/ui/products",
        data={
            "sku": "FORM-01",
            "name": "Curso de formación reglada",
            "unit_price": "300",
            "tax_rate": "0",
            "exemption_cause": "E1",
            "csrf_token": csrf(client),
        },
    )

    page = text(client.get("/ui/products"))
    assert "Exenta (E1)" in page
    assert "Operación exenta por el artículo 20 de la Ley 37/1992 del IVA" in page
    assert "Exempt (E1)" in text(client.get("/ui/products?lang=en"))


def test_an_exemption_cause_with_iva_above_zero_is_explained(rt, client):
    signed_in(rt, client)

    response = client.post(
        "/ui/products",
        data={
            "sku": "FORM-01",
            "name": "Curso",
            "unit_price": "300",
            "tax_rate": "21",
            "exemption_cause": "E1",
            "csrf_token": csrf(client),
        },
    )

    assert response.status_code == 422
    field = text(response).split('name="exemption_cause"', 1)[1].split("</label>", 1)[0]
    assert "Una operación exenta lleva IVA 0 %" in field


def test_mapping_a_crm_code_to_a_sku_lists_it_and_says_so(rt, client):
    signed_in(rt, client)
    make_product(rt, "CONS-H", "Consultoría (horas)", "95", "21")

    response = client.post(
        "/ui/products/mappings",
        data={
            "source": "hubspot",
            "external_code": "PRD-77",
            "sku": "CONS-H",
            "csrf_token": csrf(client),
        },
        follow_redirects=True,
    )

    assert "Código asignado." in text(response)
    with rt.sessions() as s:
        mapping = s.scalars(select(SkuMapping)).one()
        assert (mapping.source, mapping.external_code, mapping.product.sku) == (
            "hubspot",
            "PRD-77",
            "CONS-H",
        )


def test_mapping_to_an_unknown_sku_is_explained_next_to_the_field(rt, client):
    signed_in(rt, client)

    response = client.post(
        "/ui/products/mappings",
        data={
            "source": "hubspot",
            "external_code": "PRD-77",
            "sku": "NOPE",
            "csrf_token": csrf(client),
        },
    )

    assert response.status_code == 422
    page = text(response)
    sku_field = page.split('id="mapping-sku"', 1)[1].split("</label>", 1)[0]
    assert "No hay ningún producto con el SKU «NOPE» en el catálogo." in sku_field
    assert 'value="PRD-77"' in page
    with rt.sessions() as s:
        assert s.scalars(select(SkuMapping)).all() == []


def test_a_mapping_without_source_is_explained_next_to_the_field(rt, client):
    signed_in(rt, client)
    make_product(rt, "CONS-H", "Consultoría (horas)", "95", "21")

    response = client.post(
        "/ui/products/mappings",
        data={
            "source": " ",
            "external_code": "PRD-77",
            "sku": "CONS-H",
            "csrf_token": csrf(client),
        },
    )

    assert response.status_code == 422
    source_field = text(response).split('id="mapping-source"', 1)[1].split("</label>", 1)[0]
    assert "Es obligatorio." in source_field


def test_a_product_form_with_a_forged_token_is_refused(rt, client):
    signed_in(rt, client)

    response = client.post(
        "/ui/products",
        data={"sku": "X", "name": "X", "unit_price": "1", "tax_rate": "21", "csrf_token": "bad"},
    )

    assert response.status_code == 400
    with rt.sessions() as s:
        assert s.scalars(select(Product)).all() == []
