"""The connections API: typed connections, secrets never shown back, plain errors in both
languages, and "Probar conexión"."""

from __future__ import annotations

import pytest

from connector.connections import (
    AuthKind,
    CheckResult,
    Providers,
    ProviderSpec,
    Said,
    save_connection,
)
from connector.settings import Settings
from tests.factories import make_api_key
from tests.fake_api import fake_api

SECRET = "sup3r-s3cr3t-value"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(http_allow="127.0.0.1")  # the fake API listens there


@pytest.fixture
def headers(rt):
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def test_no_answer_ever_shows_a_secret_only_which_fields_are_set(client, headers):
    saved = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={
            "type": "http",
            "base_url": "https://api.example.com",
            "auth": "basic",
            "secret": {"username": "ana", "password": SECRET},
            "settings": {"test_path": "/me"},
        },
    )
    listed = client.get("/api/v1/connections", headers=headers)
    one = client.get("/api/v1/connections/crm", headers=headers)

    assert saved.status_code == 200, saved.json
    assert saved.json == one.json == listed.json["items"][0]
    assert one.json["secret_fields"] == ["password", "username"]
    assert one.json["has_secret"] is True and one.json["type"] == "http"
    assert one.json["settings"] == {"test_path": "/me"} and one.json["webhook_url"] is None
    for answer in (saved, listed, one):
        assert SECRET not in answer.get_data(as_text=True)
        assert "ana" not in answer.get_data(as_text=True)


def test_the_old_body_still_makes_an_http_connection(client, headers):
    saved = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={
            "base_url": "https://api.example.com",
            "auth": "header",
            "header_name": "X-Key",
            "secret": {"value": SECRET},
            "rate_limit_per_second": 5,
        },
    )
    assert saved.status_code == 200
    assert (saved.json["type"], saved.json["auth"], saved.json["header_name"]) == (
        "http",
        "header",
        "X-Key",
    )
    assert saved.json["rate_limit_per_second"] == 5


def test_a_wrong_connection_is_refused_naming_each_field_in_both_languages(client, headers):
    refused = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={
            "type": "http",
            "base_url": "https://api.example.com",
            "auth": "oauth2",
            "secret": {"client_id": "id", "client_secret": SECRET},
            "settings": {"colour": "red"},
        },
    )
    unknown = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={"type": "sap", "base_url": "https://api.example.com"},
    )

    assert refused.status_code == 422
    fields = {e["field"]: e for e in refused.json["errors"]}
    assert set(fields) == {"settings", "settings.token_url", "secret.refresh_token"}
    assert fields["secret.refresh_token"]["message_es"] == "es obligatorio y falta"
    assert "colour" in fields["settings"]["message"]
    assert SECRET not in refused.get_data(as_text=True)
    assert unknown.status_code == 422 and unknown.json["field"] == "type"
    assert "tipo de conexión desconocido, 'sap'" in unknown.json["message_es"]


def test_a_connection_with_its_own_address_shows_its_webhook_url(rt, client, headers):
    crm = ProviderSpec(**_crm_fields())
    with rt.sessions.begin() as s:
        token = save_connection(
            s,
            rt.secrets,
            name="crm",
            type="crm",
            base_url="https://api.example.com",
            auth="bearer",
            secret={"token": SECRET},
            providers=Providers.build([crm]),
        ).inbound_token

    shown = client.get("/api/v1/connections/crm", headers=headers).json

    assert shown["webhook_url"] == f"http://127.0.0.1:5000/hooks/{token}"
    assert SECRET not in str(shown)


def _crm_fields():
    return {
        "key": "crm",
        "title": "A CRM",
        "title_es": "Un CRM",
        "description": "",
        "config_schema": "providers/http.json",
        "auth": AuthKind.BEARER,
        "authenticate": lambda conn, secret: {},
        "test": lambda ctx: CheckResult(True, Said("ok", "ok")),
        "inbound": True,
    }


def test_testing_a_connection_answers_ok_or_what_to_fix(client, headers):
    with fake_api() as api:
        body = {"base_url": api.url, "auth": "bearer", "secret": {"token": SECRET}}
        client.put("/api/v1/connections/crm", headers=headers, json=body)
        api.script = [(200, {}), (401, {})]

        ok = client.post("/api/v1/connections/crm/test", headers=headers)
        refused = client.post("/api/v1/connections/crm/test", headers=headers)
        missing = client.post("/api/v1/connections/nope/test", headers=headers)

        assert api.seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert ok.status_code == 200 and ok.json["ok"] is True
    assert ok.json["message"].startswith("connected:")
    assert refused.json["ok"] is False and "401" in refused.json["message"]
    assert "revisa el secreto" in refused.json["message_es"]
    assert missing.status_code == 404
    assert SECRET not in ok.get_data(as_text=True) + refused.get_data(as_text=True)
