"""Connections: valid against their provider's schema, secrets kept out of sight, OAuth 2
tokens refreshed once however many workers ask, and a plain answer to "Probar conexión"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

import providers
from connector.connections import (
    AuthKind,
    CheckResult,
    OAuthTokens,
    Providers,
    ProviderSpec,
    Said,
    check_connection,
    read_secret,
    save_connection,
    webhook_url,
)
from connector.errors import ConfigurationError
from connector.http_client import HttpClient
from connector.models import Connection
from connector.outbound import Allowed

LOCAL = Allowed.parse("127.0.0.1")


@dataclass
class OAuthServer:
    """A token endpoint that rotates refresh tokens, and an API that wants its access token."""

    url: str = ""
    grants: list[dict[str, str]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)  # the Authorization headers seen
    delay: float = 0.0
    refused: bool = False
    issued: int = 0
    revoked: set[str] = field(default_factory=set)


@contextmanager
def oauth_server() -> Iterator[OAuthServer]:
    server_state = OAuthServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # the token endpoint: a form, as RFC 6749 has it
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            time.sleep(server_state.delay)
            with lock:
                server_state.grants.append(form)
                server_state.issued += 1
                n = server_state.issued
            if server_state.refused or form.get("refresh_token") in server_state.revoked:
                self._send(400, {"error": "invalid_grant", "error_description": "token revoked"})
                return
            server_state.revoked.add(form["refresh_token"])  # each refresh token works once
            self._send(
                200,
                {
                    "access_token": f"access-{n}",
                    "expires_in": 3600,
                    "refresh_token": f"refresh-{n}",
                },
            )

        def do_GET(self) -> None:  # the API
            auth = self.headers.get("Authorization", "")
            server_state.api_calls.append(auth)
            if auth.startswith("Bearer access-") and auth[7:] not in server_state.revoked:
                self._send(200, {"id": "me"})
            else:
                self._send(401, {"error": "unauthorized"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def save_oauth(rt: Any, url: str, name: str = "api") -> int:
    with rt.sessions.begin() as s:
        conn = save_connection(
            s,
            rt.secrets,
            name=name,
            base_url=url,
            auth="oauth2",
            settings={"token_url": f"{url}/oauth/token"},
            secret={"client_id": "cid", "client_secret": "csecret", "refresh_token": "refresh-0"},
        )
        return conn.id


def client_for(rt: Any) -> HttpClient:
    return HttpClient(rt.sessions, rt.secrets, LOCAL, redis=rt.redis)


def test_a_connection_missing_a_secret_field_is_refused_naming_it_in_both_languages(rt):
    with rt.sessions.begin() as s, pytest.raises(ConfigurationError) as refused:
        save_connection(
            s,
            rt.secrets,
            name="crm",
            base_url="https://api.example.com",
            auth="basic",
            secret={"username": "u"},
        )
    [error] = refused.value.errors
    assert error.path == "secret.password"
    assert "secret.password" in refused.value.message
    assert error.text("es") == "es obligatorio y falta"


def test_a_base_url_that_is_not_http_and_an_unknown_type_are_explained(rt):
    with rt.sessions.begin() as s, pytest.raises(ConfigurationError) as bad_url:
        save_connection(s, rt.secrets, name="crm", base_url="ftp://files.example.com")
    assert bad_url.value.errors[0].path == "base_url"

    with rt.sessions.begin() as s, pytest.raises(ConfigurationError) as bad_type:
        save_connection(s, rt.secrets, name="crm", base_url="https://x.example", type="sap")
    [error] = bad_type.value.errors
    assert error.path == "type" and "http" in error.message
    assert "tipo de conexión desconocido" in error.text("es")


def test_a_secret_is_stored_encrypted_kept_when_left_out_and_dropped_for_no_auth(rt):
    with rt.sessions.begin() as s:
        conn = save_connection(
            s,
            rt.secrets,
            name="crm",
            base_url="https://api.example.com",
            auth="bearer",
            secret={"token": "t0k3n"},
        )
        assert "t0k3n" not in (conn.secret_encrypted or "")
    with rt.sessions.begin() as s:  # new settings, no secret sent: the token stays
        conn = save_connection(
            s,
            rt.secrets,
            name="crm",
            base_url="https://api.example.com",
            auth="bearer",
            settings={"test_path": "/me"},
        )
        assert read_secret(conn, rt.secrets) == {"token": "t0k3n"}
    with rt.sessions.begin() as s:
        conn = save_connection(s, rt.secrets, name="crm", base_url="https://api.example.com")
        assert (conn.auth, conn.secret_encrypted, conn.inbound_token) == ("none", None, None)


def test_a_provider_with_its_own_address_gets_an_inbound_token_once(rt):
    crm = ProviderSpec(
        key="crm",
        title="A CRM",
        title_es="Un CRM",
        description="",
        config_schema="providers/http.json",
        auth=AuthKind.BEARER,
        authenticate=lambda conn, secret: {"Authorization": f"Bearer {secret['token']}"},
        test=lambda ctx: CheckResult(True, Said("ok", "ok")),
        inbound=True,
    )
    known = Providers.build([*providers.ALL, crm])
    with rt.sessions.begin() as s:
        first = save_connection(
            s,
            rt.secrets,
            name="crm",
            type="crm",
            base_url="https://api.example.com",
            auth="bearer",
            secret={"token": "t"},
            providers=known,
        ).inbound_token
    with rt.sessions.begin() as s:
        conn = save_connection(
            s, rt.secrets, name="crm", type="crm", base_url="https://x.example", providers=known
        )
        assert first and conn.inbound_token == first
        assert (
            webhook_url(conn, "https://puente.example/") == f"https://puente.example/hooks/{first}"
        )


def test_two_workers_needing_a_token_at_once_refresh_it_once_and_save_the_rotated_one(rt):
    with oauth_server() as server:
        server.delay = 0.3  # long enough for the second worker to arrive mid-refresh
        conn_id = save_oauth(rt, server.url)
        keepers = [OAuthTokens(rt.sessions, rt.secrets, rt.redis, LOCAL) for _ in range(2)]
        tokens: list[str] = []
        threads = [
            threading.Thread(target=lambda k=k: tokens.append(k.access_token(conn_id)))
            for k in keepers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)

        assert tokens == ["access-1", "access-1"]
        assert len(server.grants) == 1 and sum(k.refreshed for k in keepers) == 1
        assert server.grants[0] == {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-0",
            "client_id": "cid",
            "client_secret": "csecret",
        }
    with rt.sessions() as s:
        conn = s.get_one(Connection, conn_id)
        assert read_secret(conn, rt.secrets)["refresh_token"] == "refresh-1"
        assert "refresh-1" not in (conn.secret_encrypted or "")
        assert "access-1" not in (conn.access_token_encrypted or "")
        assert rt.secrets.decrypt(conn.access_token_encrypted or "") == "access-1"


def test_calls_carry_the_access_token_and_a_refused_one_is_refreshed_and_retried_once(rt):
    with oauth_server() as server:
        save_oauth(rt, server.url)
        http = client_for(rt)

        assert http.request("GET", "/me", connection="api").status == 200
        server.revoked.add("access-1")  # revoked at the other side before it expires
        assert http.request("GET", "/me", connection="api").status == 200

        assert server.api_calls == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
        assert [g["refresh_token"] for g in server.grants] == ["refresh-0", "refresh-1"]


def test_a_refused_refresh_token_is_a_configuration_error_saying_to_reconnect(rt):
    with oauth_server() as server:
        server.refused = True
        save_oauth(rt, server.url)
        with pytest.raises(ConfigurationError) as refused:
            client_for(rt).request("GET", "/me", connection="api")
    assert "token revoked" in refused.value.message
    assert "vuelve a conectar la cuenta" in refused.value.errors[0].text("es")


def test_testing_a_connection_answers_plainly_whether_it_works(rt):
    with oauth_server() as server:
        save_oauth(rt, server.url)
        with rt.sessions.begin() as s:
            save_connection(
                s,
                rt.secrets,
                name="wrong",
                base_url=server.url,
                auth="bearer",
                secret={"token": "not-a-token"},
                settings={"test_path": "/me"},
            )
        good = check_connection("api", client_for(rt), rt.sessions)
        bad = check_connection("wrong", client_for(rt), rt.sessions)
        server.refused = True  # and its next refresh fails
        with rt.sessions.begin() as s:
            conn = s.scalar(select(Connection).where(Connection.name == "api"))
            assert conn is not None
            conn.access_token_expires_at = None
            conn.access_token_encrypted = None
        expired = check_connection("api", client_for(rt), rt.sessions)
    missing = check_connection("nope", client_for(rt), rt.sessions)

    assert good.ok and "HTTP 200" in good.said.en and "conectado" in good.said.es
    assert not bad.ok and "refused the credentials (HTTP 401)" in bad.said.en
    assert "ha rechazado las credenciales" in bad.said.es
    assert not expired.ok and "connect the account again" in expired.said.en
    assert "vuelve a conectar la cuenta" in expired.said.es
    assert not missing.ok and missing.as_dict()["message_es"] == "no hay ninguna conexión 'nope'"
    for result in (good, bad, expired):
        assert "csecret" not in json.dumps(result.as_dict())
