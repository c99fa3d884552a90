"""Signing in to the UI with an API key, and out again."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for

from web.auth import sign_in
from web.ui.common import blueprint

bp = blueprint("session", __name__)


def _local(target: str | None) -> str | None:
    """Only a path on this site: never bounce a signed-in user to another one."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):  # no header can carry it
        return None
    return None if urlsplit(target).netloc else target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        if sign_in(request.form.get("api_key", "")):
            return redirect(_local(request.args.get("next")) or url_for("runs.runs"))
        error = "bad_key"
    return render_template("ui/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("session.login"))
