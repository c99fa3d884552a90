"""The audit log: every successful change made through the UI (by a person) or the API (by a
key) is recorded with who, what (the endpoint), on which subject and when.

Recorded after the answer is made, for POST, PUT, PATCH and DELETE on /ui and /api/v1: a UI
form that failed (its answer carries an error message) or an API answer of 400 or more
changed nothing and is not recorded. Sign-in pages record nothing (no one is signed in yet).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, request, session
from flask.wrappers import Response

from connector.models import AuditEntry
from web import current_runtime

log = logging.getLogger(__name__)
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that only look: checking or trying a flow, testing a connection.
LOOKS_ONLY = frozenset(
    {
        "api.check_document",
        "api.dry_run_document",
        "api.dry_run_flow",
        "api.test_connection",
        "builder.check",
        "builder.trial",
        "connections.connection_test",
    }
)
FLASHES = "_flashes"  # where Flask keeps the messages a page shows next


def subject_of(view_args: dict[str, Any] | None) -> str | None:
    """What was changed, from the URL: {"invoice_id": 12} → "invoice 12"."""
    args = dict(view_args or {})
    kind = args.pop("kind", None) or args.pop("plural", None)
    for name, value in args.items():
        if name == "doc_id" and kind:
            return f"{kind} {value}"
        if name.endswith("_id"):
            return f"{name.removesuffix('_id')} {value}"
        if name in ("name", "key"):
            return f"{name} {value}"
    return None


def init_app(app: Flask) -> None:
    @app.before_request
    def count_messages() -> None:
        if request.method in CHANGES:
            g.audit_flashes = len(session.get(FLASHES, ()))

    @app.after_request
    def record(response: Response) -> Response:
        if request.method not in CHANGES or response.status_code >= 400:
            return response
        if request.endpoint in LOOKS_ONLY:
            return response
        user, key = g.get("user"), g.get("api_key")
        if user is None and key is None:
            return response
        added = session.get(FLASHES, [])[g.get("audit_flashes", 0) :]
        if any(category == "error" for category, _message in added):
            return response
        entry = AuditEntry(
            user_id=user.id if user else None,
            api_key_id=key.id if key and not user else None,
            actor=user.email if user else f"API: {key.name}",
            action=(request.endpoint or "?")[:80],
            method=request.method,
            path=request.path[:500],
            subject=(subject_of(request.view_args) or "")[:120] or None,
        )
        try:
            with current_runtime().sessions.begin() as s:
                s.add(entry)
        except Exception:  # the change is made: a lost audit line must not hide it
            log.exception("could not record %s %s in the audit log", request.method, request.path)
        return response
