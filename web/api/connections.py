"""Connections: where actions call, with which credentials (never shown back), and for CRM
types the address their webhooks arrive at."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from connector import connections
from connector.connections import check_connection, default_providers, read_secret, spanish
from connector.errors import ConfigurationError
from connector.models import Connection
from web import current_runtime
from web.api import ApiError, bp, iso, json_body, sessions
from web.auth import needs

NAME_LENGTH = 80


def connection_json(conn: Connection, secret_fields: list[str], public_url: str) -> dict[str, Any]:
    """A connection as the API shows it: which secret fields are set, never their values."""
    return {
        "name": conn.name,
        "type": conn.type,
        "base_url": conn.base_url,
        "auth": conn.auth,
        "header_name": conn.header_name,
        "settings": conn.settings or {},
        "has_secret": conn.secret_encrypted is not None,
        "secret_fields": secret_fields,
        "rate_limit_per_second": conn.rate_limit_per_second,
        "account_id": conn.account_id,
        "webhook_url": connections.webhook_url(conn, public_url),
        "created_at": iso(conn.created_at),
    }


def _shown(conn: Connection) -> dict[str, Any]:
    rt = current_runtime()
    try:
        fields = sorted(read_secret(conn, rt.secrets))
    except ValueError:  # encrypted with a key this installation no longer has
        fields = []
    return connection_json(conn, fields, rt.settings.public_url)


def _find(s: Any, name: str) -> Connection:
    conn = s.scalar(select(Connection).where(Connection.name == name))
    if conn is None:
        raise ApiError(404, "not_found", f"connection {name!r} does not exist")
    return conn


@bp.get("/connections")
def list_connections() -> Any:
    with sessions()() as s:
        rows = s.scalars(select(Connection).order_by(Connection.name)).all()
        return jsonify({"items": [_shown(c) for c in rows]})


@bp.get("/connections/<name>")
def get_connection(name: str) -> Any:
    with sessions()() as s:
        return jsonify(_shown(_find(s, name)))


@bp.put("/connections/<name>")
@needs("admin")
def put_connection(name: str) -> Any:
    """{"type": http|<CRM>, "base_url", "secret": {...}, "settings": {...},
    "rate_limit_per_second"} and, for http, "auth": none|bearer|basic|header|oauth2 and
    "header_name"; flows name the connection, exports carry only the name. A secret left
    out is kept; its fields can be replaced one by one (null removes one)."""
    data = json_body()
    if len(name) > NAME_LENGTH:
        raise ApiError(422, "invalid", f"name must have at most {NAME_LENGTH} characters", "name")
    secret = data.get("secret")
    if secret is not None and not (
        isinstance(secret, dict) and all(isinstance(v, str) or v is None for v in secret.values())
    ):
        raise ApiError(
            422, "invalid", "secret must be an object of texts (null removes one)", "secret"
        )
    settings = data.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ApiError(422, "invalid", "settings must be an object", "settings")
    rate = data.get("rate_limit_per_second")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
    ):
        raise ApiError(
            422,
            "invalid",
            "rate_limit_per_second must be a positive number",
            "rate_limit_per_second",
        )
    for text in ("type", "base_url", "auth", "header_name"):
        if data.get(text) is not None and not isinstance(data[text], str):
            raise ApiError(422, "invalid", f"{text} must be a text", text)
    if not isinstance(data.get("base_url"), str):
        raise ApiError(422, "invalid", "base_url is required", "base_url")
    rt = current_runtime()
    try:
        with sessions().begin() as s:
            conn = connections.save_connection(
                s,
                rt.secrets,
                name=name,
                type=data.get("type") or "http",
                base_url=data["base_url"],
                auth=data.get("auth"),
                secret=secret,
                header_name=data.get("header_name"),
                settings=settings,
                rate_limit_per_second=float(rate) if rate else None,
                providers=default_providers(),
            )
            return jsonify(_shown(conn))
    except ConfigurationError as exc:
        return _refusal(exc)


@bp.post("/connections/<name>/test")
@needs("admin")
def test_connection(name: str) -> Any:
    """Run the provider's "Probar conexión": {"ok", "message", "message_es"}."""
    rt = current_runtime()
    with sessions()() as s:
        _find(s, name)
    result = check_connection(name, rt.http, rt.sessions, default_providers())
    return jsonify(result.as_dict())


def _refusal(exc: ConfigurationError) -> Any:
    """422 with every field at fault, in English and in Spanish."""
    errors = [
        {"field": e.path, "message": e.message, "message_es": e.text("es")} for e in exc.errors
    ]
    body: dict[str, Any] = {"error": "invalid", "message": exc.message}
    body["message_es"] = spanish(exc)
    if errors:
        body["field"], body["errors"] = errors[0]["field"], errors
    return jsonify(body), 422
