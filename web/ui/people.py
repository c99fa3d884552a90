"""For admins: the people who sign in (invite, role, reset, disable), the API keys programs use
(Zapier, Make, scripts), and the audit log of who changed what."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from connector import accounts, admin
from connector.accounts import AccountError
from connector.models import ApiKey, AuditEntry, User
from web.ui.common import PAGE, allow, blueprint, page_number, sessions, show_once, shown_once

bp = blueprint("people", __name__)

# A secret shown once (a temporary password, a new API key) goes through the session, sealed
# (common.show_once), to the page after the redirect, and is dropped as soon as it shows it.
SHOW_ONCE = "show_once"


@bp.get("/users")
@allow("admin", to_read=True)
def users() -> Any:
    with sessions()() as s:
        rows = s.scalars(select(User).order_by(User.email)).all()
        return render_template(
            "ui/users.html",
            users=rows,
            roles=accounts.ROLES,
            shown=shown_once(SHOW_ONCE),
            values=request.args,
        )


@bp.post("/users")
@allow("admin")
def user_invite() -> Any:
    form = request.form
    try:
        with sessions().begin() as s:
            created = accounts.create_user(
                s, form.get("email", ""), form.get("role", ""), name=form.get("name", "")
            )
            email = created.user.email
    except AccountError as exc:
        flash(exc.code, "error")
        return redirect(
            url_for("people.users", email=form.get("email", ""), name=form.get("name", ""))
        )
    show_once(SHOW_ONCE, {"kind": "password", "email": email, "secret": created.password})
    return redirect(url_for("people.users"))


@bp.post("/users/<int:user_id>")
@allow("admin")
def user_update(user_id: int) -> Any:
    """Change a role, disable or enable, or reset the password (one button each)."""
    form = request.form
    try:
        with sessions().begin() as s:
            if form.get("change") == "reset":
                password = accounts.reset_password(s, user_id)
                email = s.get(User, user_id).email
                show_once(SHOW_ONCE, {"kind": "password", "email": email, "secret": password})
            elif form.get("change") in ("disable", "enable"):
                accounts.update_user(s, user_id, active=form["change"] == "enable")
                flash("user_saved", "notice")
            else:
                accounts.update_user(s, user_id, role=form.get("role", ""))
                flash("user_saved", "notice")
    except AccountError as exc:
        flash(exc.code, "error")
    return redirect(url_for("people.users"))


@bp.get("/api-keys")
@allow("admin", to_read=True)
def api_keys() -> Any:
    with sessions()() as s:
        rows = s.scalars(
            select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.id)
        ).all()
        return render_template(
            "ui/api_keys.html", keys=rows, scopes=admin.SCOPES, shown=shown_once(SHOW_ONCE)
        )


@bp.post("/api-keys")
@allow("admin")
def api_key_create() -> Any:
    name = request.form.get("name", "").strip()
    scopes = [scope for scope in admin.SCOPES if request.form.get(f"scope_{scope}")]
    if not name or len(name) > 120:
        flash("api_key_name_needed", "error")
    elif not scopes:
        flash("api_key_scope_needed", "error")
    else:
        with sessions().begin() as s:
            _row, key = admin.new_api_key(s, name, scopes)
        show_once(SHOW_ONCE, {"kind": "api_key", "email": name, "secret": key})
    return redirect(url_for("people.api_keys"))


@bp.post("/api-keys/<int:key_id>/revoke")
@allow("admin")
def api_key_revoke(key_id: int) -> Any:
    with sessions().begin() as s:
        admin.revoke_api_key(s, key_id)
    flash("api_key_revoked", "notice")
    return redirect(url_for("people.api_keys"))


@bp.get("/audit")
@allow("admin", to_read=True)
def audit() -> Any:
    """Who changed what, newest first; `q` finds a subject ("invoice 12") or a person."""
    page = page_number()
    query = select(AuditEntry)
    q = (request.args.get("q") or "").strip()
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            func.lower(AuditEntry.actor).like(like) | func.lower(AuditEntry.subject).like(like)
        )
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(
            query.order_by(AuditEntry.id.desc()).limit(PAGE).offset((page - 1) * PAGE)
        ).all()
        return render_template(
            "ui/audit.html", entries=rows, q=q, page=page, has_next=page * PAGE < total
        )
