"""CSRF protection for the UI's forms: a per-session token every POST must echo."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint, abort, request, session

FIELD = "csrf_token"


def token() -> str:
    """The session's token (made on first use): templates put it in every form."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    value: str = session[FIELD]
    return value


def protect(bp: Blueprint) -> None:
    """Refuse (400) any POST to `bp` whose form (or, from the page's scripts, whose
    X-CSRF-Token header) lacks the session's token."""

    @bp.before_request
    def check() -> Any:
        if request.method != "POST":
            return None
        sent = request.form.get(FIELD) or request.headers.get("X-CSRF-Token", "")
        expected = session.get(FIELD)
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, "the form has expired: reload the page and try again")
        return None
