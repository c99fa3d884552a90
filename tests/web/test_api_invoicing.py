"""JSON API for invoicing: issuer, customers, invoices, issuing, VERI*FACTU, payments."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy import func, select

from connector import admin
from invoicing import verifactu
from invoicing.models import Customer, Invoice, Issuer, Payment, Series, VerifactuRecord
from tests.factories import ISSUER, deal, make_api_key, make_draft, make_issuer

NIF = ISSUER["tax_id"]  # A58818501
CUSTOMER_NIF = "B12345674"  # the sample deal's customer


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def today() -> Any:
    return datetime.now(ZoneInfo("Europe/Madrid")).date()


def invoice_body(**changes: Any) -> dict[str, Any]:
    """The sample deal as a POST /invoices body: no source or external_ref unless given."""
    data = deal()
    body = {"customer": data["customer"], "lines": data["lines"]}
    body.update(changes)
    return body


def count(rt, model) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def issue(client, key: str, invoice_id: int, **body: Any):
    return client.post(f"/api/v1/invoices/{invoice_id}/issue", json=body, headers=bearer(key))


def issued_invoice(rt, client, key: str) -> dict[str, Any]:
    """Configure the issuer if needed, make a draft, issue it, return the issue answer."""
    if count(rt, Issuer) == 0:
        make_issuer(rt)
    response = issue(client, key, make_draft(rt))
    assert response.status_code == 200, response.json
    return response.json


def pay(client, key: str, invoice_id: int, body: Any, **headers: str):
    return client.post(
        f"/api/v1/invoices/{invoice_id}/payments", json=body, headers=bearer(key, **headers)
    )


def assert_invalid(response, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.json
    assert response.json["field"] == field, response.json
    assert response.json["message"]


# --- authentication ------------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/issuer"),
    ("put", "/api/v1/issuer"),
    ("post", "/api/v1/customers"),
    ("get", "/api/v1/customers"),
    ("get", "/api/v1/customers/1"),
    ("patch", "/api/v1/customers/1"),
    ("post", "/api/v1/invoices"),
    ("post", "/api/v1/invoices/1/issue"),
    ("get", "/api/v1/invoices/1/verifactu.xml"),
    ("get", "/api/v1/invoices/1/qr.png"),
    ("get", "/api/v1/invoices/1/qr.svg"),
    ("get", f"/api/v1/verifactu/records?issuer={NIF}"),
    ("post", "/api/v1/verifactu/records/1/correct"),
    ("post", "/api/v1/invoices/1/payments"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_invoicing_endpoint_answers_401_without_a_bearer_key(rt, client, method, path):
    make_api_key(rt)

    response = getattr(client, method)(path, json={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_invoicing_endpoint_answers_401_to_an_unknown_key(rt, client, method, path):
    make_api_key(rt)

    response = getattr(client, method)(path, json={}, headers=bearer("pk_not-a-real-key"))

    assert response.status_code == 401
    assert "unknown or revoked" in response.json["message"]


def test_a_valid_request_without_a_key_changes_nothing(rt, client):
    make_api_key(rt)

    assert client.put("/api/v1/issuer", json=ISSUER).status_code == 401
    assert client.post("/api/v1/invoices", json=invoice_body()).status_code == 401
    assert client.post("/api/v1/customers", json=deal()["customer"]).status_code == 401

    assert (count(rt, Issuer), count(rt, Invoice), count(rt, Customer)) == (0, 0, 0)


# --- issuer --------------------------------------------------------------------------------


def test_the_issuer_is_404_before_it_is_configured(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/issuer", headers=bearer(key))

    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert "PUT /api/v1/issuer" in response.json["message"]


def test_putting_the_issuer_stores_it_with_series_f_r_and_s(rt, client):
    key = make_api_key(rt)

    response = client.put("/api/v1/issuer", json=ISSUER, headers=bearer(key))

    assert response.status_code == 200, response.json
    body = response.json
    assert (body["tax_id"], body["name"], body["city"]) == (NIF, "Puente Demo SL", "Madrid")
    assert body["country"] == "ES"
    assert {(s["code"], s["purpose"]) for s in body["series"]} == {
        ("F", "ordinary"),
        ("R", "rectifying"),
        ("S", "simplified"),
    }
    assert client.get("/api/v1/issuer", headers=bearer(key)).json == body


def test_putting_the_issuer_normalizes_the_nif_and_trims_the_text(rt, client):
    key = make_api_key(rt)

    body = client.put(
        "/api/v1/issuer",
        json={**ISSUER, "tax_id": " a-58818501 ", "name": "  Puente Demo SL  "},
        headers=bearer(key),
    ).json

    assert (body["tax_id"], body["name"]) == (NIF, "Puente Demo SL")


def test_putting_the_issuer_again_updates_it_without_duplicating_its_series(rt, client):
    key = make_api_key(rt)
    client.put("/api/v1/issuer", json=ISSUER, headers=bearer(key))

    response = client.put(
        "/api/v1/issuer",
        json={**ISSUER, "name": "Puente Renombrada SL", "email": "admin@puente.example"},
        headers=bearer(key),
    )

    assert response.status_code == 200
    assert response.json["name"] == "Puente Renombrada SL"
    assert response.json["email"] == "admin@puente.example"
    assert len(response.json["series"]) == 3
    assert (count(rt, Issuer), count(rt, Series)) == (1, 3)


def test_an_invalid_issuer_nif_is_refused_with_422_naming_tax_id(rt, client):
    key = make_api_key(rt)

    response = client.put(
        "/api/v1/issuer", json={**ISSUER, "tax_id": "A58818500"}, headers=bearer(key)
    )

    assert_invalid(response, "tax_id")
    assert response.json["errors"][0]["field"] == "tax_id"
    assert count(rt, Issuer) == 0


def test_an_unknown_issuer_field_is_refused_with_422_naming_it(rt, client):
    key = make_api_key(rt)

    response = client.put("/api/v1/issuer", json={**ISSUER, "vat_number": "x"}, headers=bearer(key))

    assert_invalid(response, "vat_number")
    assert "vat_number" in response.json["message"]
    assert count(rt, Issuer) == 0


@pytest.mark.parametrize("missing", ["tax_id", "name", "street", "postal_code", "city", "province"])
def test_a_missing_required_issuer_field_is_refused_with_422_naming_it(rt, client, missing):
    key = make_api_key(rt)
    data = {k: v for k, v in ISSUER.items() if k != missing}

    response = client.put("/api/v1/issuer", json=data, headers=bearer(key))

    assert_invalid(response, missing)
    assert missing in response.json["message"]
    assert count(rt, Issuer) == 0


def test_a_blank_required_issuer_field_is_refused_with_422_naming_it(rt, client):
    key = make_api_key(rt)

    response = client.put("/api/v1/issuer", json={**ISSUER, "city": "   "}, headers=bearer(key))

    assert_invalid(response, "city")
    assert count(rt, Issuer) == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("not json", "text/plain"), ("{broken", "application/json"), ("[1, 2]", "application/json")],
)
def test_a_body_that_is_not_a_json_object_is_refused_with_400(rt, client, data, content_type):
    key = make_api_key(rt)

    response = client.put(
        "/api/v1/issuer", data=data, content_type=content_type, headers=bearer(key)
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"
    assert count(rt, Issuer) == 0


def test_the_issuer_nif_may_change_while_nothing_has_been_issued(rt, client):
    key = make_api_key(rt)
    client.put("/api/v1/issuer", json=ISSUER, headers=bearer(key))
    make_draft(rt)

    response = client.put(
        "/api/v1/issuer", json={**ISSUER, "tax_id": "B65410011"}, headers=bearer(key)
    )

    assert response.status_code == 200, response.json
    assert response.json["tax_id"] == "B65410011"


def test_the_issuer_nif_cannot_change_after_an_invoice_was_issued(rt, client):
    key = make_api_key(rt)
    issued_invoice(rt, client, key)

    response = client.put(
        "/api/v1/issuer", json={**ISSUER, "tax_id": "B65410011"}, headers=bearer(key)
    )

    assert response.status_code == 409
    assert response.json["error"] == "conflict"
    assert NIF in response.json["message"]
    assert client.get("/api/v1/issuer", headers=bearer(key)).json["tax_id"] == NIF


def test_the_issuer_address_may_change_after_an_invoice_was_issued(rt, client):
    key = make_api_key(rt)
    issued_invoice(rt, client, key)

    response = client.put(
        "/api/v1/issuer", json={**ISSUER, "street": "Calle Nueva 2"}, headers=bearer(key)
    )

    assert response.status_code == 200
    assert response.json["street"] == "Calle Nueva 2"


# --- customers -----------------------------------------------------------------------------


def create_customer(client, key: str, **changes: Any):
    data = {**deal()["customer"], **changes}
    return client.post("/api/v1/customers", json=data, headers=bearer(key))


def test_creating_a_customer_answers_201_with_its_normalized_data(rt, client):
    key = make_api_key(rt)

    response = create_customer(client, key, tax_id="b-1234567-4")

    assert response.status_code == 201, response.json
    body = response.json
    assert (body["created"], body["name_differs"]) == (True, False)
    assert (body["tax_id"], body["tax_id_kind"]) == (CUSTOMER_NIF, "CIF")
    assert body["name"] == "Acme Soluciones SL"
    assert body["email"] == "facturas@acme.example"
    assert body["address"]["city"] == "Madrid"
    assert body["address"]["country"] == "ES"
    assert client.get(f"/api/v1/customers/{body['id']}", headers=bearer(key)).json == {
        k: v for k, v in body.items() if k not in ("created", "name_differs")
    }


def test_the_same_tax_id_written_differently_answers_the_existing_customer_with_200(rt, client):
    key = make_api_key(rt)
    first = create_customer(client, key).json

    again = create_customer(client, key, tax_id=" es b12345674 ", name="ACME soluciones  sl")

    assert again.status_code == 200
    assert again.json["id"] == first["id"]
    assert (again.json["created"], again.json["name_differs"]) == (False, False)
    assert count(rt, Customer) == 1


def test_the_same_tax_id_with_another_name_reports_that_the_name_differs(rt, client):
    key = make_api_key(rt)
    first = create_customer(client, key).json

    again = create_customer(client, key, name="Otra Empresa SA")

    assert again.status_code == 200
    assert again.json["id"] == first["id"]
    assert (again.json["created"], again.json["name_differs"]) == (False, True)
    assert again.json["name"] == "Acme Soluciones SL"  # the stored name wins


def test_an_invalid_customer_nif_is_refused_with_422_naming_the_tax_id(rt, client):
    key = make_api_key(rt)

    response = create_customer(client, key, tax_id="12345678A")

    assert response.status_code == 422
    assert response.json["field"] in ("tax_id", "customer.tax_id")
    assert "12345678A" in response.json["message"]
    assert count(rt, Customer) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"nickname": "acme"}, "nickname"),
        ({"address": {"country": "spain"}}, "address.country"),
    ],
)
def test_a_customer_failing_the_schema_is_refused_with_422(rt, client, changes, field):
    key = make_api_key(rt)

    response = create_customer(client, key, **changes)

    assert response.status_code == 422
    assert field in response.json["message"]
    assert response.json["field"] in (field, "")  # unknown fields are named in the message
    assert count(rt, Customer) == 0


def test_a_customer_without_a_tax_id_is_refused_with_422_naming_it(rt, client):
    key = make_api_key(rt)
    data = {k: v for k, v in deal()["customer"].items() if k != "tax_id"}

    response = client.post("/api/v1/customers", json=data, headers=bearer(key))

    assert_invalid(response, "tax_id")


def test_a_customer_with_a_blank_name_is_refused_with_422(rt, client):
    key = make_api_key(rt)

    response = create_customer(client, key, name="   ")

    assert_invalid(response, "name")
    assert count(rt, Customer) == 0


def test_customers_are_found_by_their_normalized_tax_id(rt, client):
    key = make_api_key(rt)
    wanted = create_customer(client, key).json
    create_customer(client, key, tax_id="12345678Z", name="Ana García")

    body = client.get("/api/v1/customers?tax_id=b-1234 5674", headers=bearer(key)).json

    assert [c["id"] for c in body["items"]] == [wanted["id"]]
    assert body["total"] == 1


def test_searching_customers_by_an_unknown_valid_tax_id_finds_nothing(rt, client):
    key = make_api_key(rt)
    create_customer(client, key)

    body = client.get("/api/v1/customers?tax_id=12345678Z", headers=bearer(key)).json

    assert (body["items"], body["total"]) == ([], 0)


def test_customers_are_listed_in_creation_order_without_a_filter(rt, client):
    key = make_api_key(rt)
    first = create_customer(client, key).json
    second = create_customer(client, key, tax_id="12345678Z", name="Ana García").json

    body = client.get("/api/v1/customers", headers=bearer(key)).json

    assert [c["id"] for c in body["items"]] == [first["id"], second["id"]]
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)


def test_searching_customers_by_an_invalid_tax_id_is_refused_with_400(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/customers?tax_id=12345678A", headers=bearer(key))

    assert_invalid(response, "tax_id", status=400)


def test_an_unknown_customer_is_404(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/customers/999", headers=bearer(key))

    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_patching_a_customer_edits_its_name_email_and_address(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}",
        json={
            "name": " Acme Global SL ",
            "email": "pagos@acme.example",
            "address": {"street": "Calle Menor 2", "city": "Getafe"},
        },
        headers=bearer(key),
    )

    assert response.status_code == 200, response.json
    body = response.json
    assert (body["name"], body["email"]) == ("Acme Global SL", "pagos@acme.example")
    assert body["address"] == {
        "street": "Calle Menor 2",
        "postal_code": "28013",  # untouched parts of the address stay
        "city": "Getafe",
        "province": "Madrid",
        "country": "ES",
    }
    assert body["tax_id"] == CUSTOMER_NIF
    stored = client.get(f"/api/v1/customers/{customer['id']}", headers=bearer(key)).json
    assert stored == body


def test_patching_a_customer_email_to_null_clears_it(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", json={"email": None}, headers=bearer(key)
    )

    assert response.status_code == 200
    assert response.json["email"] is None


def test_patching_a_customer_tax_id_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", json={"tax_id": "12345678Z"}, headers=bearer(key)
    )

    assert_invalid(response, "tax_id")
    assert "cannot change" in response.json["message"]


def test_patching_an_unknown_customer_field_is_refused_with_422_naming_it(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", json={"phone": "600000000"}, headers=bearer(key)
    )

    assert_invalid(response, "phone")


def test_patching_a_customer_with_a_bad_email_is_refused_and_keeps_the_old_one(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", json={"email": "nope"}, headers=bearer(key)
    )

    assert_invalid(response, "email")
    stored = client.get(f"/api/v1/customers/{customer['id']}", headers=bearer(key)).json
    assert stored["email"] == "facturas@acme.example"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"address": "Calle Mayor 1"}, "address"),
        ({"address": {"floor": "2"}}, "address"),
        ({"name": ""}, "name"),
        ({"name": 7}, "name"),
    ],
)
def test_patching_a_customer_with_invalid_values_is_refused_with_422(rt, client, data, field):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(f"/api/v1/customers/{customer['id']}", json=data, headers=bearer(key))

    assert_invalid(response, field)


def test_patching_a_customer_with_a_blank_name_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", json={"name": "   "}, headers=bearer(key)
    )

    assert_invalid(response, "name")
    stored = client.get(f"/api/v1/customers/{customer['id']}", headers=bearer(key)).json
    assert stored["name"] == "Acme Soluciones SL"


def test_patching_the_country_of_a_customer_with_a_spanish_nif_is_refused_with_422(rt, client):
    # The country comes from the tax id (like the tax id, it identifies the customer); a
    # Spanish CIF filed as French would make every invoice to it impossible to issue.
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}",
        json={"address": {"country": "FR"}},
        headers=bearer(key),
    )

    assert_invalid(response, "address.country")
    stored = client.get(f"/api/v1/customers/{customer['id']}", headers=bearer(key)).json
    assert stored["address"]["country"] == "ES"


def test_patching_an_unknown_customer_is_404(rt, client):
    key = make_api_key(rt)

    response = client.patch("/api/v1/customers/999", json={"name": "X"}, headers=bearer(key))

    assert response.status_code == 404


def test_patching_a_customer_with_a_body_that_is_not_json_is_refused_with_400(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key).json

    response = client.patch(
        f"/api/v1/customers/{customer['id']}", data="name=X", headers=bearer(key)
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"


# --- creating invoices ---------------------------------------------------------------------


def test_an_inline_customer_and_lines_make_a_draft_with_totals(rt, client):
    key = make_api_key(rt)

    response = client.post(
        "/api/v1/invoices", json=invoice_body(notes="Pedido 7"), headers=bearer(key)
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert (body["status"], body["number"], body["issue_date"]) == ("draft", None, None)
    assert body["created"] is True
    assert body["totals"] == {
        "base": "2480.50",
        "tax": "520.91",
        "total": "3001.41",
        "paid": "0.00",
        "outstanding": "3001.41",
    }
    assert body["amounts"] == {
        "gross": "2480.50",
        "discount": "0.00",
        "surcharge": "0.00",
        "withholding": "0.00",
        "due": "3001.41",
    }
    assert (body["discount_percent"], body["due_date"], body["withholdings"]) == ("0", None, [])
    assert body["customer"]["tax_id"] == CUSTOMER_NIF
    assert [(line["position"], line["base"]) for line in body["lines"]] == [
        (1, "1710.00"),
        (2, "770.50"),
    ]
    assert body["taxes"] == [{"rate": "21", "base": "2480.50", "amount": "520.91"}]
    assert body["notes"] == "Pedido 7"
    assert client.get(f"/api/v1/invoices/{body['id']}", headers=bearer(key)).status_code == 200


def test_a_customer_id_makes_the_draft_for_that_customer(rt, client):
    key = make_api_key(rt)
    customer = create_customer(client, key, tax_id="12345678Z", name="Ana García").json

    response = client.post(
        "/api/v1/invoices",
        json={"customer_id": customer["id"], "lines": deal()["lines"]},
        headers=bearer(key),
    )

    assert response.status_code == 201, response.json
    assert response.json["customer"]["id"] == customer["id"]
    assert response.json["customer"]["name"] == "Ana García"
    assert response.json["totals"]["total"] == "3001.41"
    assert count(rt, Customer) == 1


@pytest.mark.parametrize("customer_id", [999, "1", None])
def test_an_unknown_customer_id_is_refused_with_422_naming_customer_id(rt, client, customer_id):
    key = make_api_key(rt)
    create_customer(client, key)

    response = client.post(
        "/api/v1/invoices",
        json={"customer_id": customer_id, "lines": deal()["lines"]},
        headers=bearer(key),
    )

    assert_invalid(response, "customer_id")
    assert count(rt, Invoice) == 0


def test_an_invoice_without_lines_is_refused_with_422_naming_lines(rt, client):
    key = make_api_key(rt)

    response = client.post(
        "/api/v1/invoices", json={"customer": deal()["customer"]}, headers=bearer(key)
    )

    assert_invalid(response, "lines")
    assert count(rt, Invoice) == 0


@pytest.mark.parametrize(
    ("route", "kind", "hint"),
    [
        ("/api/v1/invoices", "quote", "POST /api/v1/quotes"),
        ("/api/v1/quotes", "invoice", "POST /api/v1/invoices"),
        ("/api/v1/orders", "delivery_note", "POST /api/v1/delivery-notes"),
        ("/api/v1/invoices", "albaran", ""),
    ],
)
def test_a_kind_other_than_the_routes_is_refused_naming_the_right_route(
    rt, client, route, kind, hint
):
    key = make_api_key(rt)

    response = client.post(route, json=invoice_body(kind=kind), headers=bearer(key))

    assert_invalid(response, "kind")
    assert hint in response.json["message"]
    assert count(rt, Invoice) == 0
    same = client.post(
        route, json=invoice_body(kind=route.split("/")[-1][:-1]), headers=bearer(key)
    )
    assert same.status_code == 201, same.json  # naming the route's own kind is fine


def test_an_empty_list_of_lines_is_refused_with_422_naming_lines(rt, client):
    key = make_api_key(rt)

    response = client.post("/api/v1/invoices", json=invoice_body(lines=[]), headers=bearer(key))

    assert_invalid(response, "lines")


def test_each_bad_line_value_is_listed_with_its_path(rt, client):
    key = make_api_key(rt)
    lines = deal()["lines"]
    lines[0]["quantity"] = "abc"
    lines[1]["tax_rate"] = 7

    response = client.post("/api/v1/invoices", json=invoice_body(lines=lines), headers=bearer(key))

    assert response.status_code == 422
    fields = [e["field"] for e in response.json["errors"]]
    assert "lines[0].quantity" in fields
    assert "lines[1].tax_rate" in fields
    assert response.json["field"] == "lines[0].quantity"
    assert count(rt, Invoice) == 0


def post_raw(client, key: str, body: dict[str, Any], placeholder: str, number: str):
    """POST body with the JSON string `placeholder` replaced by the bare JSON `number`."""
    raw = json.dumps(body).replace(json.dumps(placeholder), number, 1)
    assert number in raw
    return client.post(
        "/api/v1/invoices", data=raw, headers=bearer(key, **{"Content-Type": "application/json"})
    )


@pytest.mark.parametrize(
    "number",
    ["1e308", "-1e300", "1e13", "10000000000000", "9" * 4000],
    ids=["1e308", "-1e300", "1e13", "14 digits", "4000 digits"],
)
@pytest.mark.parametrize("field", ["quantity", "unit_price"])
def test_an_amount_sent_as_a_json_number_is_held_to_the_rules_of_one_sent_as_text(
    rt, client, number, field
):
    key = make_api_key(rt)
    lines = deal()["lines"]
    lines[0][field] = "<number>"

    response = post_raw(client, key, invoice_body(lines=lines), "<number>", number)

    assert_invalid(response, f"lines[0].{field}")
    assert count(rt, Invoice) == 0


def test_a_json_integer_too_long_for_python_to_read_is_a_400_that_says_so(rt, client):
    key = make_api_key(rt)
    lines = deal()["lines"]
    lines[0]["quantity"] = "<number>"

    response = post_raw(client, key, invoice_body(lines=lines), "<number>", "9" * 5000)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"
    assert "5000 digits" in response.json["message"]
    assert "sys." not in response.json["message"]  # Python's own advice is not for the sender
    assert count(rt, Invoice) == 0


def test_amounts_each_valid_whose_product_no_invoice_may_hold_are_a_422_not_a_500(rt, client):
    """Twelve digits of quantity times twelve of price overflowed NUMERIC(18, 2) on
    PostgreSQL: the core refuses the amounts before anything is written."""
    key = make_api_key(rt)
    lines = deal()["lines"]
    lines[0].update(quantity="999999999999", unit_price="999999999999.99")

    response = client.post("/api/v1/invoices", json=invoice_body(lines=lines), headers=bearer(key))

    assert_invalid(response, "lines")
    assert count(rt, Invoice) == 0


def test_a_zero_quantity_is_refused_by_the_core_with_422_naming_the_line(rt, client):
    key = make_api_key(rt)
    lines = deal()["lines"]
    lines[1]["quantity"] = "0"

    response = client.post("/api/v1/invoices", json=invoice_body(lines=lines), headers=bearer(key))

    assert_invalid(response, "lines[1].quantity")


def test_an_invoice_with_an_invalid_customer_nif_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    body = invoice_body()
    body["customer"]["tax_id"] = "12345678A"

    response = client.post("/api/v1/invoices", json=body, headers=bearer(key))

    assert_invalid(response, "customer.tax_id")
    assert (count(rt, Invoice), count(rt, Customer)) == (0, 0)


def test_the_same_deal_posted_twice_answers_the_first_draft_with_200(rt, client):
    key = make_api_key(rt)
    body = invoice_body(source="hubspot", external_ref="D-77")
    first = client.post("/api/v1/invoices", json=body, headers=bearer(key))

    again = client.post("/api/v1/invoices", json=body, headers=bearer(key))

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert again.json["created"] is False
    assert count(rt, Invoice) == 1


def test_creating_an_invoice_with_a_body_that_is_not_json_is_refused_with_400(rt, client):
    key = make_api_key(rt)

    response = client.post("/api/v1/invoices", data="lines", headers=bearer(key))

    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"


# --- Idempotency-Key on invoices -----------------------------------------------------------


def test_a_replayed_idempotency_key_answers_the_first_response_and_creates_nothing(rt, client):
    key = make_api_key(rt)
    body = invoice_body()
    headers = bearer(key, **{"Idempotency-Key": "order-1"})
    first = client.post("/api/v1/invoices", json=body, headers=headers)

    again = client.post("/api/v1/invoices", json=body, headers=headers)

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(rt, Invoice) == 1


def test_the_same_idempotency_key_with_another_body_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    headers = bearer(key, **{"Idempotency-Key": "order-1"})
    client.post("/api/v1/invoices", json=invoice_body(), headers=headers)

    response = client.post("/api/v1/invoices", json=invoice_body(notes="other"), headers=headers)

    assert response.status_code == 422
    assert response.json["error"] == "idempotency_key_reused"
    assert response.json["field"] == "Idempotency-Key"
    assert count(rt, Invoice) == 1


def test_idempotency_keys_belong_to_one_api_key(rt, client):
    alice, bob = make_api_key(rt, "alice"), make_api_key(rt, "bob")
    body = invoice_body()

    first = client.post(
        "/api/v1/invoices", json=body, headers=bearer(alice, **{"Idempotency-Key": "same"})
    )
    second = client.post(
        "/api/v1/invoices", json=body, headers=bearer(bob, **{"Idempotency-Key": "same"})
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert first.json["id"] != second.json["id"]
    assert count(rt, Invoice) == 2


def test_a_refused_request_does_not_use_up_its_idempotency_key(rt, client):
    key = make_api_key(rt)
    headers = bearer(key, **{"Idempotency-Key": "order-1"})
    refused = client.post("/api/v1/invoices", json=invoice_body(lines=[]), headers=headers)

    accepted = client.post("/api/v1/invoices", json=invoice_body(), headers=headers)

    assert refused.status_code == 422
    assert accepted.status_code == 201
    assert "Idempotent-Replayed" not in accepted.headers


@pytest.mark.parametrize("idem", ["x" * 201, "   "])
def test_an_over_long_or_blank_idempotency_key_is_refused_with_400(rt, client, idem):
    key = make_api_key(rt)

    response = client.post(
        "/api/v1/invoices", json=invoice_body(), headers=bearer(key, **{"Idempotency-Key": idem})
    )

    assert_invalid(response, "Idempotency-Key", status=400)
    assert count(rt, Invoice) == 0


def test_an_idempotency_key_of_exactly_200_characters_is_accepted(rt, client):
    key = make_api_key(rt)
    headers = bearer(key, **{"Idempotency-Key": "k" * 200})
    body = invoice_body()

    first = client.post("/api/v1/invoices", json=body, headers=headers)
    again = client.post("/api/v1/invoices", json=body, headers=headers)

    assert first.status_code == 201, first.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(rt, Invoice) == 1


# --- issuing -------------------------------------------------------------------------------


def test_issuing_without_an_issuer_is_refused_with_409_saying_what_to_configure(rt, client):
    key = make_api_key(rt)
    invoice_id = make_draft(rt)

    response = issue(client, key, invoice_id)

    assert response.status_code == 409
    assert response.json["error"] == "conflict"
    assert "issuer" in response.json["message"]
    assert "PUT /api/v1/issuer" in response.json["message"]
    with rt.sessions() as s:
        assert s.get(Invoice, invoice_id).status == "draft"


def test_issuing_numbers_dates_and_chains_the_invoice(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    invoice_id = make_draft(rt)
    year = today().year

    response = issue(client, key, invoice_id)

    assert response.status_code == 200, response.json
    body = response.json
    assert body["id"] == invoice_id
    assert body["status"] == "issued"
    assert body["number"] == f"F{year}-00001"
    assert body["issue_date"] == today().isoformat()
    assert body["issued_at"] is not None
    assert body["totals"]["total"] == "3001.41"
    assert body["totals"]["outstanding"] == "3001.41"
    assert re.fullmatch(r"[0-9A-F]{64}", body["verifactu"]["huella"])
    qr = body["verifactu"]["qr_url"]
    assert "nif=A58818501" in qr
    assert f"numserie=F{year}-00001" in qr
    assert f"fecha={today():%d-%m-%Y}" in qr
    assert "importe=3001.41" in qr


def test_issuing_twice_answers_the_same_number_and_chains_once(rt, client):
    key = make_api_key(rt)
    first = issued_invoice(rt, client, key)

    again = issue(client, key, first["id"])

    assert again.status_code == 200
    assert again.json["number"] == first["number"]
    assert again.json["issued_at"] == first["issued_at"]
    assert again.json["verifactu"] == first["verifactu"]
    assert count(rt, VerifactuRecord) == 1


def test_consecutive_invoices_get_consecutive_numbers(rt, client):
    key = make_api_key(rt)
    year = today().year

    numbers = [issued_invoice(rt, client, key)["number"] for _ in range(3)]

    assert numbers == [f"F{year}-00001", f"F{year}-00002", f"F{year}-00003"]


def test_issuing_an_unknown_invoice_is_404(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)

    response = issue(client, key, 999)

    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_issuing_with_a_past_date_uses_that_date_and_its_year(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    when = today() - timedelta(days=3)

    response = issue(client, key, make_draft(rt), issue_date=when.isoformat())

    assert response.status_code == 200, response.json
    assert response.json["issue_date"] == when.isoformat()
    assert response.json["number"] == f"F{when.year}-00001"
    assert f"fecha={when:%d-%m-%Y}" in response.json["verifactu"]["qr_url"]


def test_issuing_with_a_future_date_is_refused_with_422_naming_issue_date(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    invoice_id = make_draft(rt)
    tomorrow = today() + timedelta(days=1)

    response = issue(client, key, invoice_id, issue_date=tomorrow.isoformat())

    assert_invalid(response, "issue_date")
    assert response.json["errors"][0]["field"] == "issue_date"
    with rt.sessions() as s:
        assert s.get(Invoice, invoice_id).number is None
    assert count(rt, VerifactuRecord) == 0


def test_issuing_with_a_date_before_the_last_of_the_series_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    assert issue(client, key, make_draft(rt)).status_code == 200

    response = issue(
        client, key, make_draft(rt), issue_date=(today() - timedelta(days=1)).isoformat()
    )

    assert_invalid(response, "issue_date")
    assert "numbers must follow dates" in response.json["message"]


@pytest.mark.parametrize("bad", ["28/11/2026", "yesterday", "2026-02-30"])
def test_issuing_with_a_bad_date_string_is_refused_with_422(rt, client, bad):
    key = make_api_key(rt)
    make_issuer(rt)
    invoice_id = make_draft(rt)

    response = issue(client, key, invoice_id, issue_date=bad)

    assert_invalid(response, "issue_date")
    assert count(rt, VerifactuRecord) == 0


def test_issuing_in_an_unknown_series_is_refused_with_422_naming_series(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)

    response = issue(client, key, make_draft(rt), series="Z")

    assert_invalid(response, "series")


def test_issuing_an_ordinary_invoice_in_the_rectifying_series_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)

    response = issue(client, key, make_draft(rt), series="R")

    assert_invalid(response, "series")
    assert "rectifying" in response.json["message"]


def test_issuing_with_a_json_body_that_is_not_an_object_is_refused_with_400(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    invoice_id = make_draft(rt)

    response = client.post(
        f"/api/v1/invoices/{invoice_id}/issue", json=["2026-11-01"], headers=bearer(key)
    )

    assert response.status_code == 400
    with rt.sessions() as s:
        assert s.get(Invoice, invoice_id).number is None


# --- VERI*FACTU document and QR ------------------------------------------------------------


def test_the_verifactu_xml_of_a_draft_is_409(rt, client):
    key = make_api_key(rt)
    invoice_id = make_draft(rt)

    response = client.get(f"/api/v1/invoices/{invoice_id}/verifactu.xml", headers=bearer(key))

    assert response.status_code == 409
    assert "draft" in response.json["message"]


def test_the_verifactu_xml_of_an_unknown_invoice_is_404(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/invoices/999/verifactu.xml", headers=bearer(key))

    assert response.status_code == 404


def test_the_verifactu_xml_of_an_issued_invoice_validates_against_the_aeat_schema(rt, client):
    key = make_api_key(rt)
    issued = issued_invoice(rt, client, key)

    response = client.get(f"/api/v1/invoices/{issued['id']}/verifactu.xml", headers=bearer(key))

    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    verifactu.validate(response.data)
    root = etree.fromstring(response.data)
    texts = {el.tag.rpartition("}")[2]: el.text for el in root.iter() if el.text}
    assert texts["NumSerieFactura"] == issued["number"]
    assert texts["Huella"] == issued["verifactu"]["huella"]
    assert texts["ImporteTotal"] == "3001.41"


def test_the_qr_png_of_an_issued_invoice_is_a_png(rt, client):
    key = make_api_key(rt)
    issued = issued_invoice(rt, client, key)

    response = client.get(f"/api/v1/invoices/{issued['id']}/qr.png", headers=bearer(key))

    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert response.data == verifactu.qr_png(issued["verifactu"]["qr_url"])


def test_the_qr_svg_of_an_issued_invoice_is_an_svg(rt, client):
    key = make_api_key(rt)
    issued = issued_invoice(rt, client, key)

    response = client.get(f"/api/v1/invoices/{issued['id']}/qr.svg", headers=bearer(key))

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert etree.fromstring(response.data).tag == "{http://www.w3.org/2000/svg}svg"


def test_a_qr_in_another_format_is_404(rt, client):
    key = make_api_key(rt)
    issued = issued_invoice(rt, client, key)

    response = client.get(f"/api/v1/invoices/{issued['id']}/qr.gif", headers=bearer(key))

    assert response.status_code == 404
    assert "qr.png" in response.json["message"]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_the_qr_of_a_draft_is_409(rt, client, fmt):
    key = make_api_key(rt)
    invoice_id = make_draft(rt)

    response = client.get(f"/api/v1/invoices/{invoice_id}/qr.{fmt}", headers=bearer(key))

    assert response.status_code == 409


def test_the_qr_of_an_unknown_invoice_is_404(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/invoices/999/qr.png", headers=bearer(key))

    assert response.status_code == 404


# --- VERI*FACTU records --------------------------------------------------------------------


def test_the_verifactu_records_list_the_issuer_chain_in_order(rt, client):
    key = make_api_key(rt)
    issued = [issued_invoice(rt, client, key) for _ in range(3)]

    response = client.get(f"/api/v1/verifactu/records?issuer={NIF}", headers=bearer(key))

    assert response.status_code == 200
    body = response.json
    items = body["items"]
    assert body["total"] == 3
    assert [r["sequence"] for r in items] == [1, 2, 3]
    assert [r["invoice_id"] for r in items] == [i["id"] for i in issued]
    assert [r["num_serie"] for r in items] == [i["number"] for i in issued]
    assert [r["huella"] for r in items] == [i["verifactu"]["huella"] for i in issued]
    assert items[0]["previous_huella"] is None
    assert items[1]["previous_huella"] == items[0]["huella"]
    assert items[2]["previous_huella"] == items[1]["huella"]
    assert {r["kind"] for r in items} == {"alta"}
    assert {r["importe_total"] for r in items} == {"3001.41"}


def test_rejected_records_are_listed_with_the_aeat_error_and_corrected_by_an_admin_key(
    rt, client, verifactu_mode
):
    key = make_api_key(rt)
    first, second = (issued_invoice(rt, client, key) for _ in range(2))
    # What aeat.submit_pending stores from the AEAT's answer (sent for real in test_aeat.py).
    with rt.sessions.begin() as s:
        record = s.scalars(
            select(VerifactuRecord).where(VerifactuRecord.invoice_id == first["id"])
        ).one()
        record.status, record.error_code = "rejected", 4109
        record.error_description = "El NIF no está identificado en el censo de la AEAT."
        record_id = record.id
    assert first["verifactu"]["mode"] == "verifactu"
    assert first["verifactu"]["status"] == "pending"

    rejected = client.get("/api/v1/verifactu/records?status=rejected", headers=bearer(key)).json

    assert [(r["id"], r["num_serie"]) for r in rejected["items"]] == [(record_id, first["number"])]
    assert rejected["items"][0]["error_code"] == 4109
    assert rejected["items"][0]["error_description"].startswith("El NIF no está identificado")
    detail = client.get(f"/api/v1/invoices/{first['id']}", headers=bearer(key)).json
    assert (detail["verifactu"]["status"], detail["verifactu"]["error_code"]) == ("rejected", 4109)

    with rt.sessions.begin() as s:
        writer = admin.create_api_key(s, "writer", scopes=["read", "write"])
    refused = client.post(f"/api/v1/verifactu/records/{record_id}/correct", headers=bearer(writer))
    assert refused.status_code == 403 and refused.json["missing_scope"] == "admin"

    fixed = client.post(f"/api/v1/verifactu/records/{record_id}/correct", headers=bearer(key))

    assert fixed.status_code == 201
    body = fixed.json
    assert (body["corrects"], body["subsanacion"], body["rechazo_previo"]) == (record_id, True, "S")
    assert body["status"] == "pending" and body["sequence"] == 3
    assert body["huella"] != record.huella
    again = client.post(f"/api/v1/verifactu/records/{record_id}/correct", headers=bearer(key))
    assert again.status_code == 409
    assert (
        client.get("/api/v1/verifactu/records?status=rejected", headers=bearer(key)).json["total"]
        == 0
    )
    detail = client.get(f"/api/v1/invoices/{first['id']}", headers=bearer(key)).json
    assert detail["verifactu"]["id"] == body["id"] and detail["verifactu"]["cancellation"] is None
    assert second["verifactu"]["qr_url"].startswith(verifactu.QR_URL_TESTS)


def test_the_verifactu_records_can_be_paged(rt, client):
    key = make_api_key(rt)
    for _ in range(3):
        issued_invoice(rt, client, key)

    body = client.get(
        f"/api/v1/verifactu/records?issuer={NIF}&limit=1&offset=1", headers=bearer(key)
    ).json

    assert [r["sequence"] for r in body["items"]] == [2]
    assert (body["total"], body["limit"], body["offset"]) == (3, 1, 1)


def test_the_verifactu_records_accept_the_nif_in_lower_case(rt, client):
    key = make_api_key(rt)
    issued_invoice(rt, client, key)

    body = client.get("/api/v1/verifactu/records?issuer=a58818501", headers=bearer(key)).json

    assert body["total"] == 1


def test_the_verifactu_records_before_the_company_is_set_up_are_404(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/verifactu/records", headers=bearer(key))

    assert response.status_code == 404


def test_the_verifactu_records_refuse_an_unknown_status(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)

    response = client.get("/api/v1/verifactu/records?status=lost", headers=bearer(key))

    assert_invalid(response, "status")


def test_the_verifactu_records_of_an_unknown_issuer_are_404(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)

    response = client.get("/api/v1/verifactu/records?issuer=B65410011", headers=bearer(key))

    assert response.status_code == 404
    assert "B65410011" in response.json["message"]


# --- payments ------------------------------------------------------------------------------


def test_paying_a_draft_is_refused_with_409(rt, client):
    key = make_api_key(rt)
    invoice_id = make_draft(rt)

    response = pay(client, key, invoice_id, {"amount": "10.00"})

    assert response.status_code == 409
    assert "draft" in response.json["message"]
    assert count(rt, Payment) == 0


def test_paying_an_unknown_invoice_is_404(rt, client):
    key = make_api_key(rt)

    response = pay(client, key, 999, {"amount": "10.00"})

    assert response.status_code == 404


def test_a_partial_payment_answers_201_with_paid_and_outstanding(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = pay(
        client,
        key,
        invoice["id"],
        {"amount": "1000.41", "paid_on": "2026-11-20", "method": "transfer", "reference": "TR-1"},
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "issued"
    assert (body["totals"]["paid"], body["totals"]["outstanding"]) == ("1000.41", "2001.00")
    assert body["payments"] == [
        {
            "id": body["payment_id"],
            "amount": "1000.41",
            "paid_on": "2026-11-20",
            "method": "transfer",
            "reference": "TR-1",
        }
    ]


def test_a_payment_without_a_date_is_dated_today(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    body = pay(client, key, invoice["id"], {"amount": 100}).json

    assert body["payments"][0]["paid_on"] == today().isoformat()
    assert body["totals"]["paid"] == "100.00"


def test_paying_the_whole_amount_marks_the_invoice_paid(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)
    pay(client, key, invoice["id"], {"amount": "1.41"})

    response = pay(client, key, invoice["id"], {"amount": "3000"})

    assert response.status_code == 201
    assert response.json["status"] == "paid"
    assert (response.json["totals"]["paid"], response.json["totals"]["outstanding"]) == (
        "3001.41",
        "0.00",
    )


def test_paying_a_paid_invoice_is_refused_with_409(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)
    pay(client, key, invoice["id"], {"amount": "3001.41"})

    response = pay(client, key, invoice["id"], {"amount": "0.01"})

    assert response.status_code == 409
    assert count(rt, Payment) == 1


def test_paying_more_than_is_owed_is_refused_with_422_naming_amount(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)
    pay(client, key, invoice["id"], {"amount": "1000"})

    response = pay(client, key, invoice["id"], {"amount": "2001.42"})

    assert_invalid(response, "amount")
    assert "2001.41" in response.json["message"]
    assert count(rt, Payment) == 1


def test_a_payment_without_an_amount_is_refused_with_422(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = pay(client, key, invoice["id"], {"paid_on": "2026-11-20"})

    assert_invalid(response, "amount")


@pytest.mark.parametrize("amount", ["abc", -5, "-5", 0, "1.001", 1.001, None, True, [1]])
def test_a_bad_amount_is_refused_with_422_naming_amount(rt, client, amount):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = pay(client, key, invoice["id"], {"amount": amount})

    assert_invalid(response, "amount")
    assert count(rt, Payment) == 0


@pytest.mark.parametrize("paid_on", ["20/11/2026", "soon", "2026-11-31"])
def test_a_bad_payment_date_is_refused_with_422_naming_paid_on(rt, client, paid_on):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = pay(client, key, invoice["id"], {"amount": "10", "paid_on": paid_on})

    assert_invalid(response, "paid_on")
    assert count(rt, Payment) == 0


def test_a_payment_with_a_body_that_is_not_json_is_refused_with_400(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = client.post(
        f"/api/v1/invoices/{invoice['id']}/payments", data="amount=10", headers=bearer(key)
    )

    assert response.status_code == 400


def test_a_replayed_payment_answers_the_same_and_records_one_payment(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)
    idem = {"Idempotency-Key": "pay-1"}
    first = pay(client, key, invoice["id"], {"amount": "500"}, **idem)

    again = pay(client, key, invoice["id"], {"amount": "500"}, **idem)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(rt, Payment) == 1
    stored = client.get(f"/api/v1/invoices/{invoice['id']}", headers=bearer(key)).json
    assert stored["totals"]["paid"] == "500.00"


def test_a_payment_idempotency_key_reused_for_another_amount_is_refused(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)
    pay(client, key, invoice["id"], {"amount": "500"}, **{"Idempotency-Key": "pay-1"})

    response = pay(client, key, invoice["id"], {"amount": "600"}, **{"Idempotency-Key": "pay-1"})

    assert response.status_code == 422
    assert response.json["error"] == "idempotency_key_reused"
    assert count(rt, Payment) == 1


def test_a_payment_refused_on_a_draft_can_be_retried_with_its_key_once_issued(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    invoice_id = make_draft(rt)
    idem = {"Idempotency-Key": "pay-1"}
    assert pay(client, key, invoice_id, {"amount": "10"}, **idem).status_code == 409
    assert issue(client, key, invoice_id).status_code == 200

    response = pay(client, key, invoice_id, {"amount": "10"}, **idem)

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert count(rt, Payment) == 1


def test_a_payment_idempotency_key_of_exactly_200_characters_is_accepted(rt, client):
    key = make_api_key(rt)
    invoice = issued_invoice(rt, client, key)

    response = pay(client, key, invoice["id"], {"amount": "10"}, **{"Idempotency-Key": "p" * 200})

    assert response.status_code == 201, response.data
    assert count(rt, Payment) == 1


# --- recargo de equivalencia, IRPF, payment days, general discount ------------------------------

RETAILER = {
    "name": "Ferretería López García",
    "tax_id": "12345678Z",
    "address": {
        "street": "Calle Real 3",
        "postal_code": "41001",
        "city": "Sevilla",
        "province": "Sevilla",
        "country": "ES",
    },
}


def test_a_customer_is_created_in_recargo_de_equivalencia_with_payment_days(rt, client):
    key = make_api_key(rt)

    created = client.post(
        "/api/v1/customers",
        json={**RETAILER, "equivalence_surcharge": True, "payment_days": 30},
        headers=bearer(key),
    )

    assert created.status_code == 201, created.json
    assert (created.json["equivalence_surcharge"], created.json["payment_days"]) == (True, 30)
    plain = create_customer(client, key).json
    assert (plain["equivalence_surcharge"], plain["payment_days"]) == (False, 0)
    shown = client.get(f"/api/v1/customers/{created.json['id']}", headers=bearer(key)).json
    assert (shown["equivalence_surcharge"], shown["payment_days"]) == (True, 30)


def test_a_customer_s_terms_change_with_patch_and_are_checked(rt, client):
    key = make_api_key(rt)
    customer = client.post("/api/v1/customers", json=RETAILER, headers=bearer(key)).json
    path = f"/api/v1/customers/{customer['id']}"

    patched = client.patch(
        path, json={"equivalence_surcharge": True, "payment_days": 60}, headers=bearer(key)
    )

    assert patched.status_code == 200, patched.json
    assert (patched.json["equivalence_surcharge"], patched.json["payment_days"]) == (True, 60)
    assert patched.json["name"] == RETAILER["name"]  # the rest is kept
    for body, field in (
        ({"payment_days": 366}, "payment_days"),
        ({"payment_days": "30"}, "payment_days"),
        ({"equivalence_surcharge": "sí"}, "equivalence_surcharge"),
    ):
        refused = client.patch(path, json=body, headers=bearer(key))
        assert (refused.status_code, refused.json["field"]) == (422, field), body
    foreign = client.post(
        "/api/v1/customers",
        json={"name": "Épicerie Dupont", "tax_id": "FR40303265045", "address": {"country": "FR"}},
        headers=bearer(key),
    ).json
    refused = client.patch(
        f"/api/v1/customers/{foreign['id']}",
        json={"equivalence_surcharge": True},
        headers=bearer(key),
    )
    assert (refused.status_code, refused.json["field"]) == (422, "equivalence_surcharge")
    assert "Spanish NIF" in refused.json["message"]


def test_a_draft_with_a_general_discount_and_withholding_shows_every_amount(rt, client):
    key = make_api_key(rt)
    customer = client.post(
        "/api/v1/customers",
        json={**RETAILER, "equivalence_surcharge": True, "payment_days": 30},
        headers=bearer(key),
    ).json
    body = {
        "customer_id": customer["id"],
        "discount_percent": "10",
        "lines": [
            {
                "description": "Asesoría fiscal",
                "quantity": "1",
                "unit_price": "1000",
                "tax_rate": 21,
                "withholding_rate": "15",
            },
            {"description": "Manual", "quantity": "2", "unit_price": "12.50", "tax_rate": 4},
        ],
    }

    created = client.post("/api/v1/invoices", json=body, headers=bearer(key))

    assert created.status_code == 201, created.json
    draft = created.json
    # 21 %: 1000.00 - 10 % = 900.00; IVA 189.00; recargo 5,2 % 46.80.
    #  4 %: 25.00 - 10 % (2.50) = 22.50; IVA 0.90; recargo 0,5 % 0.1125 → 0.11.
    assert draft["taxes"] == [
        {
            "rate": "21",
            "base": "900.00",
            "amount": "189.00",
            "surcharge_rate": "5.2",
            "surcharge_amount": "46.80",
        },
        {
            "rate": "4",
            "base": "22.50",
            "amount": "0.90",
            "surcharge_rate": "0.5",
            "surcharge_amount": "0.11",
        },
    ]
    # Base 922.50; IVA 189.90; total 922.50 + 189.90 + 46.91 = 1159.31.
    # IRPF 15 % of 900.00 = 135.00; to pay 1159.31 - 135.00 = 1024.31.
    assert draft["totals"] == {
        "base": "922.50",
        "tax": "189.90",
        "total": "1159.31",
        "paid": "0.00",
        "outstanding": "1024.31",
    }
    assert draft["amounts"] == {
        "gross": "1025.00",
        "discount": "102.50",
        "surcharge": "46.91",
        "withholding": "135.00",
        "due": "1024.31",
    }
    assert draft["withholdings"] == [{"rate": "15", "base": "900.00", "amount": "135.00"}]
    assert [line["withholding_rate"] for line in draft["lines"]] == ["15", None]
    assert (draft["discount_percent"], draft["due_date"]) == ("10", None)
    assert (draft["customer"]["equivalence_surcharge"], draft["customer"]["payment_days"]) == (
        True,
        30,
    )

    patched = client.patch(
        f"/api/v1/invoices/{draft['id']}", json={"discount_percent": 0}, headers=bearer(key)
    )
    assert patched.status_code == 200, patched.json
    # Without the discount: 1000.00 + 210.00 + 52.00 and 25.00 + 1.00 + 0.125 → 0.13:
    # total 1288.13; IRPF 150.00; to pay 1138.13.
    assert (patched.json["totals"]["total"], patched.json["amounts"]["due"]) == (
        "1288.13",
        "1138.13",
    )

    make_issuer(rt)
    issued = issue(client, key, draft["id"])
    assert issued.status_code == 200, issued.json
    due = (today() + timedelta(days=30)).isoformat()
    assert (issued.json["issue_date"], issued.json["due_date"]) == (today().isoformat(), due)
    assert issued.json["verifactu"]["qr_url"].endswith("&importe=1288.13")

    too_much = pay(client, key, draft["id"], {"amount": "1288.13"})
    assert too_much.status_code == 422
    assert "more than the 1138.13 still owed" in too_much.json["message"]
    paid = pay(client, key, draft["id"], {"amount": "1138.13"})
    assert paid.status_code == 201, paid.json
    assert (paid.json["status"], paid.json["totals"]["outstanding"]) == ("paid", "0.00")

    record = client.get(f"/api/v1/invoices/{draft['id']}/verifactu.xml", headers=bearer(key))
    verifactu.validate(record.data)
    root = etree.fromstring(record.data)
    sum1 = f"{{{verifactu.NS_SUM1}}}"
    assert root.findtext(f".//{sum1}CuotaTotal") == "263.13"  # 210.00 + 1.00 + 52.00 + 0.13
    assert root.findtext(f".//{sum1}ImporteTotal") == "1288.13"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"discount_percent": 150}, "discount_percent"),
        ({"discount_percent": "5.12345"}, "discount_percent"),
        (
            {"lines": [{"description": "X", "quantity": 1, "unit_price": 1, "tax_rate": 21,
                        "withholding_rate": "101"}]},
            "lines[0].withholding_rate",
        ),
    ],
)  # fmt: skip
def test_bad_discounts_and_withholding_rates_are_refused_naming_the_field(
    rt, client, changes, field
):
    key = make_api_key(rt)
    response = client.post("/api/v1/invoices", json=invoice_body(**changes), headers=bearer(key))
    assert (response.status_code, response.json["field"]) == (422, field), response.json
