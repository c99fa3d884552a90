"""What the UI's areas share: their blueprints (under /ui, forms checked for the CSRF token, every
page checked for the person signed in and what their role may do), the database, paging, the
once-only form key and links to any document.

Every area module imports this one; this one imports none of them (it names their endpoints
only as text, in url_for), so there is no import circle.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from connector import accounts
from connector.accounts import can
from connector.models import User
from invoicing.models import DocumentKind, Invoice
from web import csrf, current_runtime
from web.i18n import language, translate

F = TypeVar("F", bound=Callable[..., Any])

PAGE = 50
NEW_FLOW_SECRET = "new_flow_secret"  # a new flow's webhook secret, shown once on its page
SHOWN_FOR = 600  # seconds a secret kept for the next page can still be shown
MAX_PAGE = 1_000_000  # beyond any list; its offset still fits a database integer

# The documents other than invoices, by the plural their pages' URLs use.
KINDS = {
    "quotes": DocumentKind.QUOTE,
    "orders": DocumentKind.ORDER,
    "delivery-notes": DocumentKind.DELIVERY_NOTE,
}
PLURALS = {kind: plural for plural, kind in KINDS.items()}


def blueprint(name: str, import_name: str) -> Blueprint:
    """The blueprint of one area of the UI: its pages under /ui, every POST checked for CSRF."""
    bp = Blueprint(name, import_name, url_prefix="/ui")
    csrf.protect(bp)
    bp.before_request(_authorize)
    return bp


def init_app(app: Flask) -> None:
    """Give every template what the UI's forms need."""

    @app.context_processor
    def forms() -> dict[str, Any]:
        user = current_user()
        return {
            "csrf_token": csrf.token,
            "form_once": lambda: uuid.uuid4().hex,
            "user": user,
            "can": lambda permission: user is not None and can(user.role, permission),
        }


def sessions() -> sessionmaker[Any]:
    return current_runtime().sessions


def page_number() -> int:
    """The ?page= asked for: 1 when missing or not a number, at most MAX_PAGE."""
    return min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)


def once_key() -> str | None:
    """The idempotency key of the form sent (its hidden `once` field): a form sent twice, by a
    double click or a browser's resend, records one payment or one draft."""
    once = request.form.get("once", "")
    return f"ui-form:{once}" if re.fullmatch(r"[0-9a-f]{32}", once) else None


def allow(permission: str, *, to_read: bool = False) -> Callable[[F], F]:
    """Mark a view's changes (POST) as needing `permission` (connector.accounts.PERMISSIONS).
    Unmarked, reading (GET) is open to every role and changing needs "admin": a new form is
    closed until it says who may use it. `to_read=True` asks `permission` to read it too."""

    def mark(view: F) -> F:
        view.puente_permission = permission  # type: ignore[attr-defined]
        view.puente_to_read = to_read  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Mark a view as open without signing in (the sign-in page)."""
    view.puente_permission = None  # type: ignore[attr-defined]
    return view


def _authorize() -> Any:
    """Before every UI view: who is signed in (g.user) and whether their role may do this."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    permission = getattr(view, "puente_permission", "admin")
    if request.method in ("GET", "HEAD") and not getattr(view, "puente_to_read", False):
        permission = permission and "read"
    g.user = signed_in_user()
    if permission is None:
        return None
    if g.user is None:
        session.clear()
        return redirect(url_for("session.login", next=request.full_path.rstrip("?")))
    if g.user.lang != language():  # their e-mails are written in the language they use
        with sessions().begin() as s:
            s.execute(update(User).where(User.id == g.user.id).values(lang=language()))
    if g.user.must_change_password and request.endpoint not in FREE_WITH_TEMPORARY_PASSWORD:
        return redirect(url_for("session.password"))
    if not can(g.user.role, permission):
        abort(403)
    return None


# What someone with a temporary password may still do: choose their own, or leave.
FREE_WITH_TEMPORARY_PASSWORD = frozenset({"session.password", "session.logout"})


def signed_in_user() -> User | None:
    """The active account this browser signed in as, while that sign-in lives: signing out, a
    new password or a disabled account end it (accounts.signed_in), whatever the cookie says."""
    token = session.get("sign_in")
    if not isinstance(token, str):
        return None
    with sessions()() as s:
        user = accounts.signed_in(s, token)
        if user is not None:
            s.expunge(user)
        return user


def current_user() -> User | None:
    return g.get("user")


def typed_amount(text: str | None) -> str:
    """An amount as a person types it, as the core reads it: in Spanish "1.500,50" (or
    "1500,5", or "1.500") is 1500.50; in English "1,500.50" is. Anything else is left as it is,
    for the core to refuse with the field named."""
    value = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if language() == "en":
        return value.replace(",", "")
    if "," in value:
        return value.replace(".", "").replace(",", ".")
    if re.fullmatch(r"-?\d{1,3}(\.\d{3})+", value):  # "1.500": thousands, the Spanish way
        return value.replace(".", "")
    return value


def doc_url(doc: Invoice) -> str:
    """The page of any document: invoices have their own."""
    if doc.kind == DocumentKind.INVOICE:
        return url_for("invoices.invoice_detail", invoice_id=doc.id)
    return url_for("documents.document_detail", kind=PLURALS[DocumentKind(doc.kind)], doc_id=doc.id)


def doc_name(doc: Invoice) -> str:
    """Its kind and its number once it has one: "Pedido #12", "Factura F2026-00042"."""
    return f"{translate(f'doc_kind_{doc.kind}')} {doc.number or f'#{doc.id}'}"


HELPERS = {"doc_url": doc_url, "doc_name": doc_name}  # for templates that list documents


def show_once(key: str, value: Any) -> None:
    """Keep `value` (a new password, key or secret) for the next page only. The session cookie
    is signed, not encrypted: the value rides in it sealed with the instance's secret key, so
    the cookie (in a log, a proxy, a copied browser profile) does not give it away, and it
    opens for SHOWN_FOR seconds only."""
    session[key] = current_runtime().secrets.encrypt(json.dumps(value))


def shown_once(key: str) -> Any:
    """What `show_once` kept under `key`, taken out of the session; None if nothing, or if it
    cannot be opened any more (too old, or the secret key changed)."""
    sealed = session.pop(key, None)
    if not isinstance(sealed, str):
        return None
    try:
        return json.loads(current_runtime().secrets.decrypt(sealed, ttl=SHOWN_FOR))
    except ValueError:
        return None
