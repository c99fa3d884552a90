"""A customer's contact data is checked by the core, whoever sends it (API, CRM, UI)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from invoicing.errors import InvalidDocumentError
from invoicing.models import Customer
from invoicing.service import CustomerData, Invoicing
from tests.factories import ACME, make_api_key


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        ({"country": "España"}, "customer.address.country", "no es un código de país"),
        ({"email": "ana@"}, "customer.email", "ana@"),
        ({"postal_code": "2801"}, "customer.address.postal_code", "2801"),
    ],
)
def test_a_customer_with_wrong_contact_data_is_refused_and_nothing_is_saved(
    rt, changes, field, said
):
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).find_or_create_customer(replace(ACME, **changes))

    [(path, message)] = refused.value.errors
    assert path == field and said in message.es
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


@pytest.mark.parametrize(
    "email",
    [
        "facturas@acme.example\r\n",
        "facturas@acme.example\n",
        "\tfacturas@acme.example",
        "facturas@acme.example\r\nBcc: spy@evil.example",
        "fact\x1buras@acme.example",
        "facturas@acme.example\x85",  # NEL, a C1 line break
    ],
)
def test_an_email_with_a_line_break_or_another_control_character_is_refused(rt, email):
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).find_or_create_customer(replace(ACME, email=email))

    [(path, message)] = refused.value.errors
    assert path == "customer.email"
    assert "control character" in str(message) and "carácter de control" in message.es


def test_a_lower_case_country_code_is_understood(rt):
    with rt.sessions.begin() as s:
        customer = Invoicing(s).find_or_create_customer(replace(ACME, country="es")).customer
        assert (customer.country, customer.tax_id_kind) == ("ES", "CIF")


def test_the_api_refuses_a_wrong_email_on_an_existing_customer(rt, client):
    key = make_api_key(rt)
    with rt.sessions.begin() as s:
        customer_id = Invoicing(s).find_or_create_customer(ACME).customer.id

    response = client.patch(
        f"/api/v1/customers/{customer_id}",
        json={"email": "facturas@acme"},
        headers={"Authorization": f"Bearer {key}"},
    )

    assert response.status_code == 422 and response.json["field"] == "email"
    with rt.sessions() as s:
        assert s.get_one(Customer, customer_id).email is None


def test_a_persons_name_given_apart_reaches_facturae_and_half_of_it_is_refused(rt, client):
    from lxml import etree

    from invoicing import exports
    from invoicing.issuing import issue
    from invoicing.models import Invoice
    from invoicing.service import LineData
    from tests.factories import make_issuer

    key = make_api_key(rt)
    person = {
        "name": "Juan Carlos Pérez Gil",
        "tax_id": "12345678Z",
        "individual": {"given_name": "Juan Carlos", "first_surname": "Pérez"},
        "address": {"street": "Calle Real 3", "postal_code": "41001", "city": "Sevilla"},
    }
    half = {**person, "tax_id": "00000000T", "individual": {"given_name": "Ana"}}
    refused = client.post(
        "/api/v1/customers", json=half, headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 422 and refused.json["field"] == "individual.first_surname"

    made = client.post("/api/v1/customers", json=person, headers={"Authorization": f"Bearer {key}"})
    assert made.status_code == 201, made.json
    assert made.json["individual"] == {
        "given_name": "Juan Carlos",
        "first_surname": "Pérez",
        "second_surname": None,
    }
    make_issuer(rt)
    with rt.sessions.begin() as s:
        customer = Invoicing(s).find_or_create_customer(CustomerData.from_json(person)).customer
        draft = Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(person),
            lines=[LineData(description="Clase", quantity=1, unit_price="50", tax_rate=21)],
        )
        assert draft.invoice.customer_id == customer.id
        issue(s, draft.invoice.id)
    with rt.sessions() as s:
        root = etree.fromstring(exports.facturae_xml(s.get_one(Invoice, draft.invoice.id)))
    person_xml = root.find("Parties/BuyerParty/Individual")
    assert person_xml is not None
    assert (person_xml.findtext("Name"), person_xml.findtext("FirstSurname")) == (
        "Juan Carlos",
        "Pérez",
    )
