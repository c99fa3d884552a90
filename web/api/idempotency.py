"""`Idempotency-Key` on POST: a repeat gets the first answer and creates nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.models import ApiIdempotency
from web.api import ApiError, sessions

F = TypeVar("F", bound=Callable[..., Any])
MAX_KEY = 200


def request_key() -> str | None:
    """The caller's Idempotency-Key, namespaced by API key (two callers never collide)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY:
        raise ApiError(
            400,
            "bad_request",
            f"Idempotency-Key must have 1 to {MAX_KEY} characters",
            "Idempotency-Key",
        )
    # Hashed: the caller's key may be as long as the column, and the prefix must fit too.
    return f"api:{g.api_key.id}:{hashlib.sha256(key.encode()).hexdigest()}"


def idempotent(view: F) -> F:
    """Store the first successful answer under the key; replay it for the same request."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        request_key()  # validates it
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path}\n".encode() + request.get_data()
        ).hexdigest()
        stored = _stored(g.api_key.id, key)
        if stored is not None:
            return _replay(stored, fingerprint)
        response = view(*args, **kwargs)
        result: Response = response[0] if isinstance(response, tuple) else response
        status = response[1] if isinstance(response, tuple) else result.status_code
        if 200 <= status < 300:
            try:
                with sessions().begin() as s:
                    s.add(
                        ApiIdempotency(
                            api_key_id=g.api_key.id,
                            key=key,
                            fingerprint=fingerprint,
                            status=status,
                            body=result.get_json(),
                        )
                    )
            except IntegrityError:
                # A concurrent twin answered first; the domain key kept the effect single.
                stored = _stored(g.api_key.id, key)
                if stored is not None:
                    return _replay(stored, fingerprint)
        return response

    return wrapper  # type: ignore[return-value]


def _stored(api_key_id: int, key: str) -> ApiIdempotency | None:
    with sessions()() as s:
        return s.scalar(
            select(ApiIdempotency).where(
                ApiIdempotency.api_key_id == api_key_id, ApiIdempotency.key == key
            )
        )


def _replay(stored: ApiIdempotency, fingerprint: str) -> Any:
    if stored.fingerprint != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; "
            "use a new key for a new request",
            "Idempotency-Key",
        )
    response = jsonify(stored.body)
    response.headers["Idempotent-Replayed"] = "true"
    return response, stored.status
