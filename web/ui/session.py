"""Signing in with e-mail and password, out again, and choosing one's own password."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from sqlalchemy.orm import Session

from connector import accounts
from connector.accounts import AccountError
from connector.models import User
from web.filters import local_time
from web.ui.common import allow, blueprint, current_user, public, sessions

bp = blueprint("session", __name__)


def _local(target: str | None) -> str | None:
    """Only a path on this site: never bounce a signed-in user to another one."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):  # no header can carry it
        return None
    return None if urlsplit(target).netloc else target


def start_session(s: Session, user: User) -> None:
    """This browser is now signed in as `user` (a fresh session and sign-in: no fixation)."""
    session.clear()
    session["sign_in"] = accounts.open_sign_in(s, user)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    error: AccountError | None = None
    email, changing = "", False
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        with sessions().begin() as s:
            found = accounts.authenticate(s, email, request.form.get("password", ""))
            if isinstance(found, AccountError):
                error = found  # the failure is counted: committed
            else:
                start_session(s, found)
                changing = found.must_change_password
        if error is None:
            if changing:
                return redirect(url_for("session.password"))
            return redirect(_local(request.args.get("next")) or url_for("runs.runs"))
    locked_until = error.values.get("until") if error else None
    until = local_time(locked_until) if isinstance(locked_until, datetime) else None
    return render_template("ui/login.html", error=error and error.code, until=until, email=email), (
        401 if error else 200
    )


@bp.post("/logout")
@public
def logout() -> Any:
    token = session.get("sign_in")
    if isinstance(token, str):
        with sessions().begin() as s:
            accounts.close_sign_in(s, token)
    session.clear()
    return redirect(url_for("session.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@allow("read")
def password() -> Any:
    """Choose one's own password: required after a temporary one from an admin."""
    user = current_user()
    assert user is not None  # the page needs a sign-in
    error: AccountError | None = None
    if request.method == "POST":
        new = request.form.get("password", "")
        try:
            if new != request.form.get("repeat", ""):
                raise AccountError("password_mismatch", "repeat")
            with sessions().begin() as s:
                row = s.get(User, user.id)
                assert row is not None
                accounts.change_password(s, row, request.form.get("current", ""), new)
                start_session(s, row)  # this browser stays signed in; the others end
        except AccountError as exc:
            error = exc
        else:
            flash("password_changed", "notice")
            return redirect(url_for("runs.runs"))
    return render_template(
        "ui/password.html",
        error=error,
        minimum=accounts.MIN_PASSWORD,
        temporary=user.must_change_password,
        notify=user.notify,
        choices=NOTIFY_CHOICES,
    ), (422 if error else 200)


NOTIFY_CHOICES = ("immediate", "daily", "off")


@bp.post("/account/notifications")
@allow("read")
def notifications() -> Any:
    """How the person hears of their flows' failed runs: at once, a daily digest, or never."""
    user = current_user()
    assert user is not None
    choice = request.form.get("notify", "")
    if choice not in NOTIFY_CHOICES:
        flash("notify_invalid", "error")
    else:
        with sessions().begin() as s:
            row = s.get(User, user.id)
            assert row is not None
            row.notify = choice
        flash("notify_saved", "ok")
    return redirect(url_for("session.password"))
