"""API keys: create one with its scopes (the key is shown once), list them, revoke one."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from connector.admin import SCOPES, new_api_key, revoke_api_key
from connector.models import ApiKey
from web.api import ApiError, bp, iso, json_body, sessions
from web.auth import needs

NAME_LENGTH = 120


def key_json(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scopes": row.scopes,
        "prefix": row.prefix,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
    }


@bp.post("/api-keys")
@needs("admin")
def create_key() -> Any:
    """{"name", "scopes": ["read", "write", "admin"]} → 201 with "key", shown this once."""
    data = json_body()
    name, scopes = data.get("name"), data.get("scopes")
    unknown = sorted(set(data) - {"name", "scopes"})
    if unknown:
        raise ApiError(422, "invalid", f"unknown field {unknown[0]!r}", unknown[0])
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LENGTH:
        raise ApiError(
            422, "invalid", f"name must be a text of 1 to {NAME_LENGTH} characters", "name"
        )
    if not isinstance(scopes, list) or not scopes:
        raise ApiError(
            422, "invalid", f"scopes must be a non-empty list of {', '.join(SCOPES)}", "scopes"
        )
    for index, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise ApiError(
                422,
                "invalid",
                f"unknown scope {scope!r}; the scopes are {', '.join(SCOPES)}",
                f"scopes[{index}]",
            )
    with sessions().begin() as s:
        row, key = new_api_key(s, name.strip(), scopes)
        return jsonify({**key_json(row), "key": key}), 201


@bp.get("/api-keys")
@needs("admin")
def list_keys() -> Any:
    with sessions()() as s:
        rows = s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.id))
        return jsonify({"items": [key_json(row) for row in rows]})


@bp.delete("/api-keys/<int:key_id>")
@needs("admin")
def revoke_key(key_id: int) -> Any:
    """Revoke at once: the next request with it is refused. Revoking twice is not an error."""
    with sessions().begin() as s:
        if not revoke_api_key(s, key_id):
            raise ApiError(404, "not_found", f"API key {key_id} does not exist")
    return "", 204
