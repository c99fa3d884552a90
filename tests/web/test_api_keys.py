"""API keys with scopes: created with the key shown once, listed without it, revoked at once;
every /api/v1 route refuses a missing, revoked or under-scoped key; a per-key rate limit."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from actions.invoicing import INVOICING_SETTINGS
from connector import admin
from connector.models import ApiKey
from connector.runtime import build_runtime
from tests.factories import make_api_key
from web import create_app
from web.auth import scope_of


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_with(rt, *scopes: str) -> str:
    with rt.sessions.begin() as s:
        return admin.create_api_key(s, f"key {'+'.join(scopes)}", scopes=scopes)


def api_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, a concrete path, endpoint) of every /api/v1 route."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<any\(([a-z]+)[^>]*>", r"\1", path)
        path = re.sub(r"<[^>]+>", "x", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path, rule.endpoint))
    return found


def test_every_api_route_refuses_no_key_an_unknown_key_and_a_revoked_key(rt, client, app):
    live = make_api_key(rt)
    with rt.sessions.begin() as s:
        revoked = admin.create_api_key(s, "old")
        s.query(ApiKey).filter(ApiKey.name == "old").update({"revoked_at": admin.utcnow()})
    routes = api_routes(app)
    assert len(routes) > 60
    checked = 0
    for method, path, endpoint in routes:
        if scope_of(app.view_functions[endpoint], method) is None:
            continue  # public: the OpenAPI document
        for headers in ({}, bearer("pk_unknown"), bearer(revoked)):
            answer = client.open(path, method=method, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers, answer.status_code)
            assert answer.json["error"] == "unauthorized"
            assert answer.json["message_es"]
        checked += 1
    assert checked > 60
    assert client.get("/api/v1/flows", headers=bearer(live)).status_code == 200


def test_every_api_route_refuses_a_key_without_its_scope_naming_the_scope(rt, client, app):
    keys = {scope: key_with(rt, scope) for scope in ("read", "write")}
    needed: dict[str, int] = {}
    for method, path, endpoint in api_routes(app):
        scope = scope_of(app.view_functions[endpoint], method)
        if scope is None:
            continue
        needed[scope] = needed.get(scope, 0) + 1
        for held, key in keys.items():
            if held == scope:
                continue
            answer = client.open(path, method=method, headers=bearer(key), json={})
            assert answer.status_code == 403, (method, path, held, answer.status_code)
            assert answer.json["missing_scope"] == scope
            assert scope in answer.json["message"] and scope in answer.json["message_es"]
    # Reads need read, writes need write, and the keys, connections and issuer need admin.
    assert needed["read"] > 20 and needed["write"] > 20 and needed["admin"] >= 6
    assert scope_of(app.view_functions["api.create_key"], "POST") == "admin"
    assert scope_of(app.view_functions["api.put_connection"], "PUT") == "admin"
    assert scope_of(app.view_functions["api.list_invoices"], "GET") == "read"
    assert scope_of(app.view_functions["api.push_events"], "POST") == "write"


def test_a_key_with_the_scope_gets_through_and_admin_has_every_scope(rt, client):
    reader, admin_key = key_with(rt, "read"), key_with(rt, "admin")
    assert client.get("/api/v1/invoices", headers=bearer(reader)).status_code == 200
    assert client.get("/api/v1/invoices", headers=bearer(admin_key)).status_code == 200
    made = client.post(
        "/api/v1/api-keys", json={"name": "zapier", "scopes": ["read"]}, headers=bearer(admin_key)
    )
    assert made.status_code == 201


def test_a_new_key_is_shown_once_listed_without_it_and_works_with_its_scopes(rt, client):
    admin_key = make_api_key(rt)
    made = client.post(
        "/api/v1/api-keys",
        json={"name": "Zapier", "scopes": ["write", "read"]},
        headers=bearer(admin_key),
    )
    assert made.status_code == 201
    key = made.json["key"]
    assert key.startswith("pk_") and made.json["scopes"] == ["read", "write"]
    listed = client.get("/api/v1/api-keys", headers=bearer(admin_key)).json["items"]
    mine = next(item for item in listed if item["id"] == made.json["id"])
    assert mine["name"] == "Zapier" and mine["scopes"] == ["read", "write"]
    assert mine["last_used_at"] is None and mine["created_at"]
    assert "key" not in mine and key not in str(listed)
    assert client.get("/api/v1/invoices", headers=bearer(key)).status_code == 200
    listed = client.get("/api/v1/api-keys", headers=bearer(admin_key)).json["items"]
    assert next(i for i in listed if i["id"] == made.json["id"])["last_used_at"] is not None


def test_revoking_a_key_refuses_its_next_request_and_drops_it_from_the_list(rt, client):
    admin_key = make_api_key(rt)
    made = client.post(
        "/api/v1/api-keys", json={"name": "make", "scopes": ["read"]}, headers=bearer(admin_key)
    ).json
    assert client.get("/api/v1/invoices", headers=bearer(made["key"])).status_code == 200
    gone = client.delete(f"/api/v1/api-keys/{made['id']}", headers=bearer(admin_key))
    assert gone.status_code == 204
    assert client.get("/api/v1/invoices", headers=bearer(made["key"])).status_code == 401
    again = client.delete(f"/api/v1/api-keys/{made['id']}", headers=bearer(admin_key))
    assert again.status_code == 204
    listed = client.get("/api/v1/api-keys", headers=bearer(admin_key)).json["items"]
    assert made["id"] not in [item["id"] for item in listed]
    missing = client.delete("/api/v1/api-keys/999999", headers=bearer(admin_key))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["read"]}, "name"),
        ({"name": " ", "scopes": ["read"]}, "name"),
        ({"name": "x"}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["read", "root"]}, "scopes[1]"),
        ({"name": "x", "scopes": ["read"], "role": "admin"}, "role"),
    ],
)
def test_a_bad_key_request_is_refused_naming_the_field(rt, client, body, field):
    answer = client.post("/api/v1/api-keys", json=body, headers=bearer(make_api_key(rt)))
    assert answer.status_code == 422
    assert answer.json["field"] == field
    with rt.sessions() as s:
        assert s.query(ApiKey).count() == 1  # only the admin's


def test_a_key_past_its_rate_limit_gets_429_with_retry_after_and_others_do_not(
    rt, settings, invoicing_settings
):
    limited = build_runtime(
        settings.with_(api_rate_limit_per_minute=3),
        services={INVOICING_SETTINGS: invoicing_settings},
    )
    try:
        _past_the_limit(rt, create_app(runtime=limited).test_client())
    finally:
        limited.close()


def _past_the_limit(rt, client) -> None:
    busy, other = make_api_key(rt, "busy"), make_api_key(rt, "other")
    answers = [client.get("/api/v1/flows", headers=bearer(busy)).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = client.get("/api/v1/flows", headers=bearer(busy))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json["error"] == "rate_limited" and "minuto" in limited.json["message_es"]
    assert client.get("/api/v1/flows", headers=bearer(other)).status_code == 200
