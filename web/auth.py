"""Bearer API keys for the JSON API; the same keys sign people in to the UI (whose pages check
the sign-in with web.ui.common.require_login)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, jsonify, request, session

from connector.admin import find_api_key
from connector.models import ApiKey
from web import current_runtime

F = TypeVar("F", bound=Callable[..., Any])


def _check(key: str) -> ApiKey | None:
    with current_runtime().sessions.begin() as s:
        row = find_api_key(s, key)
        if row is not None:
            s.flush()  # keep last_used_at
            s.expunge(row)
        return row


def require_api_key(view: F) -> F:
    """Answer 401 unless `Authorization: Bearer <api key>` names a live key."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _unauthorized("send the header 'Authorization: Bearer <api key>'")
        row = _check(key.strip())
        if row is None:
            return _unauthorized("the API key is unknown or revoked")
        g.api_key = row
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unauthorized(message: str) -> Any:
    response = jsonify({"error": "unauthorized", "message": message})
    response.headers["WWW-Authenticate"] = 'Bearer realm="puente"'
    return response, 401


def sign_in(key: str) -> bool:
    """Sign this browser in with an API key; False when the key is unknown or revoked."""
    row = _check(key.strip())
    if row is None:
        return False
    session.clear()
    session["api_key_id"] = row.id
    session["api_key_name"] = row.name
    return True
