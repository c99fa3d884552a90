"""Any JSON API: a base URL and none, bearer, basic, API key header or OAuth 2 auth."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from connector.connections import CheckContext, CheckResult, ConnectionView, ProviderSpec, Said

# The secret fields each auth kind uses; the others are dropped when a connection is saved.
SECRET_FIELDS = {
    "none": (),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("value",),
    "oauth2": ("client_id", "client_secret", "refresh_token"),
}


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    """Keep only the secret fields the chosen auth uses (none keeps no secret at all)."""
    used = SECRET_FIELDS.get(str(document.get("auth", "none")))
    if used is None:  # an unknown auth: the schema explains it, with the secret untouched
        return document
    secret = {k: v for k, v in document.get("secret", {}).items() if k in used}
    return {**document, "secret": secret}


def authenticate(conn: ConnectionView, secret: Mapping[str, str]) -> dict[str, str]:
    """The headers a call with this connection carries."""
    if conn.auth == "bearer":
        return {"Authorization": f"Bearer {secret['token']}"}
    if conn.auth == "oauth2":
        return {"Authorization": f"Bearer {secret['access_token']}"}
    if conn.auth == "basic":
        pair = f"{secret['username']}:{secret['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if conn.auth == "header":
        return {conn.header_name or "X-Api-Key": secret["value"]}
    return {}


def test(ctx: CheckContext) -> CheckResult:
    """GET the test path (the base URL by default) with the connection's credentials."""
    path = str(ctx.connection.settings.get("test_path") or "")
    answer = ctx.request("GET", path)  # what fails to arrive is said by check_connection
    if answer.status in (401, 403):
        return CheckResult(
            False,
            Said(
                f"{answer.url} refused the credentials (HTTP {answer.status}): check the "
                "connection's secret and its auth",
                f"{answer.url} ha rechazado las credenciales (HTTP {answer.status}): revisa el "
                "secreto de la conexión y su autenticación",
            ),
        )
    if answer.status >= 400:
        return CheckResult(
            False,
            Said(
                f"{answer.url} answered HTTP {answer.status}: check base_url and "
                "settings.test_path",
                f"{answer.url} ha respondido HTTP {answer.status}: revisa base_url y "
                "settings.test_path",
            ),
        )
    return CheckResult(
        True,
        Said(
            f"connected: {answer.url} answered HTTP {answer.status}",
            f"conectado: {answer.url} ha respondido HTTP {answer.status}",
        ),
    )


SPEC = ProviderSpec(
    key="http",
    title="HTTP API",
    title_es="API HTTP",
    description=__doc__ or "",
    config_schema="providers/http.json",
    auth=None,  # each connection chooses
    authenticate=authenticate,
    test=test,
    normalize=normalize,
)
