"""Catalog API: products by SKU and CRM code mappings, with clear errors."""

from __future__ import annotations

from tests.factories import make_api_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


PRODUCT = {"sku": "CONS-H", "name": "Consultoría (hora)", "unit_price": "95.00", "tax_rate": 21}


def test_a_product_is_created_found_by_sku_and_not_created_twice(rt, client):
    key = make_api_key(rt)
    created = client.post("/api/v1/products", json=PRODUCT, headers=bearer(key))
    assert created.status_code == 201
    assert (created.json["unit_price"], created.json["tax_rate"]) == ("95", "21")

    found = client.get("/api/v1/products?sku=CONS-H", headers=bearer(key)).json
    assert [p["id"] for p in found["items"]] == [created.json["id"]]

    again = client.post("/api/v1/products", json=PRODUCT, headers=bearer(key))
    assert again.status_code == 409 and "exists already" in again.json["message"]


def test_bad_products_are_refused_naming_each_field(rt, client):
    key = make_api_key(rt)
    answer = client.post(
        "/api/v1/products",
        headers=bearer(key),
        json={**PRODUCT, "tax_rate": 7, "unit_price": "abc"},
    )
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json["errors"]] == ["unit_price", "tax_rate"]
    missing = client.post("/api/v1/products", headers=bearer(key), json={"sku": "X"})
    assert (missing.status_code, missing.json["field"]) == (422, "unit_price")
    unknown = client.post("/api/v1/products", headers=bearer(key), json={**PRODUCT, "iva": 21})
    assert (unknown.status_code, unknown.json["field"]) == (422, "iva")


def test_a_crm_code_maps_to_a_sku_and_a_draft_by_that_code_gets_the_catalog_iva(rt, client):
    key = make_api_key(rt)
    client.post("/api/v1/products", json=PRODUCT, headers=bearer(key))
    unknown = client.post(
        "/api/v1/sku-mappings",
        headers=bearer(key),
        json={"source": "hubspot", "external_code": "PRD-77", "sku": "NOPE"},
    )
    assert (unknown.status_code, unknown.json["field"]) == (422, "sku")
    mapped = client.post(
        "/api/v1/sku-mappings",
        headers=bearer(key),
        json={"source": "hubspot", "external_code": "PRD-77", "sku": "CONS-H"},
    )
    assert mapped.status_code == 201
    again = client.post(
        "/api/v1/sku-mappings",
        headers=bearer(key),
        json={"source": "hubspot", "external_code": "PRD-77", "sku": "CONS-H"},
    )
    assert again.status_code == 200  # the code was mapped already: the same mapping, not a new one

    invoice = client.post(
        "/api/v1/invoices",
        headers=bearer(key),
        json={
            "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
            "source": "hubspot",
            "lines": [{"sku": "PRD-77", "quantity": 3}],
        },
    )

    assert invoice.status_code == 201, invoice.json
    assert invoice.json["lines"][0]["sku"] == "CONS-H"
    assert invoice.json["totals"]["total"] == "344.85"  # 285.00 + 21 % IVA
    listed = client.get("/api/v1/sku-mappings?source=hubspot", headers=bearer(key)).json
    assert listed["items"] == [{"source": "hubspot", "external_code": "PRD-77", "sku": "CONS-H"}]
    assert listed["total"] == 1


def test_a_line_without_sku_or_price_is_explained(rt, client):
    key = make_api_key(rt)
    answer = client.post(
        "/api/v1/invoices",
        headers=bearer(key),
        json={
            "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
            "lines": [{"quantity": 3, "description": "Algo"}],
        },
    )
    assert answer.status_code == 422
    assert answer.json["errors"][0] == {
        "field": "lines[0]",
        "message": "needs a catalog sku, or description, unit_price and tax_rate",
    }


def test_a_product_carries_its_irpf_withholding_into_the_lines_that_use_it(rt, client):
    key = make_api_key(rt)
    created = client.post(
        "/api/v1/products",
        json={**PRODUCT, "sku": "ASES-H", "withholding_rate": "15"},
        headers=bearer(key),
    )
    assert created.status_code == 201, created.json
    assert created.json["withholding_rate"] == "15"
    plain = client.post("/api/v1/products", json=PRODUCT, headers=bearer(key)).json
    assert plain["withholding_rate"] is None

    invoice = client.post(
        "/api/v1/invoices",
        headers=bearer(key),
        json={
            "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
            "lines": [{"sku": "ASES-H", "quantity": "2", "withholding_rate": "7"}],
        },
    )
    assert invoice.status_code == 201, invoice.json
    # The catalog's 15 % wins over the line's 7 %: 190.00 × 15 % = 28.50 withheld;
    # 190.00 + 39.90 IVA = 229.90; to pay 229.90 - 28.50 = 201.40.
    assert invoice.json["lines"][0]["withholding_rate"] == "15"
    assert invoice.json["withholdings"] == [{"rate": "15", "base": "190.00", "amount": "28.50"}]
    assert (invoice.json["totals"]["total"], invoice.json["amounts"]["due"]) == (
        "229.90",
        "201.40",
    )


def test_a_bad_withholding_rate_on_a_product_is_refused(rt, client):
    key = make_api_key(rt)
    for rate in ("0", "120", "abc", "15.555"):
        answer = client.post(
            "/api/v1/products", json={**PRODUCT, "withholding_rate": rate}, headers=bearer(key)
        )
        assert (answer.status_code, answer.json["field"]) == (422, "withholding_rate"), rate
