"""The OpenAPI document: valid 3.1, every route in it and nothing else, built from the JSON
Schemas the code validates with; /api/docs serves it from our own files. (Every /api/v1
answer the tests receive is checked against it: tests/openapi_check.py.)"""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from connector.public_events import event_types
from connector.schemas import load_schema
from web.api.openapi import openapi_path


def test_the_document_is_valid_openapi_3_1_and_open_to_anyone(client):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    spec = answer.json
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_api_route_is_documented_and_every_documented_operation_exists(client, app):
    spec = client.get("/api/v1/openapi.json").json
    routes = {
        (method.lower(), openapi_path(rule.rule.removeprefix("/api/v1")))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations that are no route"
    assert len(routes) > 70


def test_each_operation_names_its_scope_and_its_errors(client):
    spec = client.get("/api/v1/openapi.json").json
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path == "/openapi.json":
                assert op["security"] == []
                continue
            assert op["x-scope"] in ("read", "write", "admin"), (method, path)
            assert op["security"] == [{"apiKey": [op["x-scope"]]}]
            assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
            if method in ("post", "put", "patch"):
                assert "422" in op["responses"], (method, path)
            if "{" in path:
                assert "404" in op["responses"], (method, path)


def test_schemas_come_from_the_files_the_code_validates_with(client, rt):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    deal = load_schema("triggers/deal_won.json")
    assert schemas["triggers.deal_won"]["required"] == deal["required"]
    assert set(schemas["triggers.deal_won"]["properties"]) == set(deal["properties"])
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(spec).replace("'", '"'))
    assert set(refs) <= set(schemas)  # every reference resolves
    variants = schemas["PublicEvent"]["oneOf"]
    assert {v["properties"]["type"]["const"] for v in variants} == set(event_types(rt.registry))
    push = spec["paths"]["/triggers/{name}/events"]["post"]["requestBody"]
    assert "triggers.deal_won" in str(push)


def test_the_docs_page_is_served_from_our_own_files(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert asset.startswith("/"), f"{asset} is not one of our files"
        assert client.get(asset).status_code == 200, asset
    assert "http://" not in html and "https://" not in html
