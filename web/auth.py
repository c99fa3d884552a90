"""Bearer API keys with scopes for the JSON API, rate limited per key. (People sign in to the
UI with e-mail and password instead: connector.accounts, web.ui.common.)

Every /api/v1 route is checked before it runs (web.api's before_request), so no route can
be added without a check: GET and HEAD need "read", other methods "write", and a route marked
with `@needs("admin")` (or any scope) needs that one. A key with "admin" has every scope.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, jsonify, request

from connector.admin import find_api_key
from connector.models import ApiKey
from web import current_runtime

F = TypeVar("F", bound=Callable[..., Any])
RATE_WINDOW_SECONDS = 60


def needs(scope: str) -> Callable[[F], F]:
    """Mark a view as needing `scope` instead of what its method needs."""

    def mark(view: F) -> F:
        view.puente_scope = scope  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Mark a view as open to anyone (the OpenAPI document)."""
    view.puente_scope = None  # type: ignore[attr-defined]
    return view


def scope_of(view: Callable[..., Any], method: str) -> str | None:
    """The scope a view needs for `method`; None when it is public."""
    if hasattr(view, "puente_scope"):
        scope: str | None = view.puente_scope
        return scope
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


def check_request() -> Any:
    """The answer refusing this request (401, 403, 429), or None to let it through."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:  # no route matched: Flask answers 404/405 itself
        return None
    scope = scope_of(view, request.method)
    if scope is None:
        return None
    return authorize(scope)


def authorize(scope: str) -> Any:
    """Check the bearer key for `scope` and its rate; None when allowed (g.api_key is set)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _unauthorized(
            "send the header 'Authorization: Bearer <api key>'",
            "envía la cabecera 'Authorization: Bearer <clave de API>'",
        )
    row = _check(key.strip())
    if row is None:
        return _unauthorized(
            "the API key is unknown or revoked; create a new one",
            "la clave de API no existe o se ha revocado; crea una nueva",
        )
    g.api_key = row
    if scope not in row.scopes and "admin" not in row.scopes:
        body = {
            "error": "forbidden",
            "message": f"this API key lacks the scope {scope!r}; create a key with it",
            "message_es": f"esta clave de API no tiene el permiso «{scope}»; crea una clave "
            "que lo tenga",
            "missing_scope": scope,
        }
        return jsonify(body), 403
    return _rate_limited(row)


def requires(scope: str) -> Callable[[F], F]:
    """For views outside /api/v1 (metrics): answer 401/403/429 unless the key may."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refused = authorize(scope)
            return refused if refused is not None else view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def has_valid_key() -> bool:
    """The request carries a known, unrevoked API key (no scope or rate asked: for /healthz,
    which must answer while Redis, where rates are counted, is down)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(key.strip()) and _check(key.strip()) is not None


def _check(key: str) -> ApiKey | None:
    with current_runtime().sessions.begin() as s:
        row = find_api_key(s, key)
        if row is not None:
            s.flush()  # keep last_used_at
            s.expunge(row)
        return row


def _rate_limited(row: ApiKey) -> Any:
    """429 once the key has made its requests of this minute (a fixed window in Redis)."""
    rt = current_runtime()
    limit = rt.settings.api_rate_limit_per_minute
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // RATE_WINDOW_SECONDS)
    name = f"puente:api-rate:{row.id}:{window}"
    with rt.redis.pipeline() as pipe:
        pipe.incr(name)
        pipe.expire(name, RATE_WINDOW_SECONDS * 2)
        used = int(pipe.execute()[0])
    g.rate_remaining = max(0, limit - used)
    g.rate_limit = limit
    if used <= limit:
        return None
    wait = max(1, int((window + 1) * RATE_WINDOW_SECONDS - now + 0.999))
    response = jsonify(
        {
            "error": "rate_limited",
            "message": f"this API key made more than {limit} requests in a minute; "
            f"try again in {wait} s",
            "message_es": f"esta clave de API ha hecho más de {limit} peticiones en un minuto; "
            f"vuelve a intentarlo dentro de {wait} s",
        }
    )
    response.headers["Retry-After"] = str(wait)
    return response, 429


def _unauthorized(message: str, message_es: str) -> Any:
    response = jsonify({"error": "unauthorized", "message": message, "message_es": message_es})
    response.headers["WWW-Authenticate"] = 'Bearer realm="puente"'
    return response, 401
