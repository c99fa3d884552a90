"""Connections: where HTTP actions call and with which credentials (never shown back)."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from sqlalchemy import select

from connector.http_client import save_connection
from connector.models import Connection
from web.api import ApiError, bp, iso, json_body, sessions
from web.auth import require_api_key


def connection_json(conn: Connection) -> dict[str, Any]:
    return {
        "name": conn.name,
        "base_url": conn.base_url,
        "auth": conn.auth,
        "header_name": conn.header_name,
        "has_secret": conn.secret_encrypted is not None,
        "rate_limit_per_second": conn.rate_limit_per_second,
        "created_at": iso(conn.created_at),
    }


@bp.get("/connections")
@require_api_key
def list_connections() -> Any:
    with sessions()() as s:
        rows = s.scalars(select(Connection).order_by(Connection.name)).all()
        return jsonify({"items": [connection_json(c) for c in rows]})


@bp.put("/connections/<name>")
@require_api_key
def put_connection(name: str) -> Any:
    """{"base_url", "auth": none|bearer|basic|header, "secret": {...}, "header_name",
    "rate_limit_per_second"}; flows name the connection, exports carry only the name."""
    data = json_body()
    secret = data.get("secret")
    if secret is not None and not (
        isinstance(secret, dict) and all(isinstance(v, str) for v in secret.values())
    ):
        raise ApiError(422, "invalid", "secret must be an object of texts", "secret")
    rate = data.get("rate_limit_per_second")
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        raise ApiError(
            422,
            "invalid",
            "rate_limit_per_second must be a positive number",
            "rate_limit_per_second",
        )
    if not isinstance(data.get("base_url"), str):
        raise ApiError(422, "invalid", "base_url is required", "base_url")
    rt = current_app.extensions["puente"]
    with sessions().begin() as s:
        conn = save_connection(
            s,
            rt.secrets,
            name=name[:80],
            base_url=data["base_url"],
            auth=str(data.get("auth", "none")),
            secret=secret,
            header_name=data.get("header_name"),
            rate_limit_per_second=float(rate) if rate else None,
        )
        return jsonify(connection_json(conn))
