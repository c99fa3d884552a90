"""What the UI's areas share: their blueprints (under /ui, forms checked for the CSRF token), the
sign-in check, the database, paging, the once-only form key and links to any document.

Every area module imports this one; this one imports none of them (it names their endpoints
only as text, in url_for), so there is no import circle.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, redirect, request, session, url_for
from sqlalchemy.orm import sessionmaker

from connector.models import ApiKey
from invoicing.models import DocumentKind, Invoice
from web import csrf, current_runtime
from web.i18n import translate

F = TypeVar("F", bound=Callable[..., Any])

PAGE = 50
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
    return bp


def init_app(app: Flask) -> None:
    """Give every template what the UI's forms need."""

    @app.context_processor
    def forms() -> dict[str, Any]:
        return {"csrf_token": csrf.token, "form_once": lambda: uuid.uuid4().hex}


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


def require_login(view: F) -> F:
    """Send people who have not signed in to the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "api_key_id" not in session or not _live(session["api_key_id"]):
            session.clear()  # a revoked key signs its people out
            return redirect(url_for("session.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _live(api_key_id: int) -> bool:
    with sessions()() as s:
        row = s.get(ApiKey, api_key_id)
        return row is not None and row.revoked_at is None


def doc_url(doc: Invoice) -> str:
    """The page of any document: invoices have their own."""
    if doc.kind == DocumentKind.INVOICE:
        return url_for("invoices.invoice_detail", invoice_id=doc.id)
    return url_for("documents.document_detail", kind=PLURALS[DocumentKind(doc.kind)], doc_id=doc.id)


def doc_name(doc: Invoice) -> str:
    """Its kind and its number once it has one: "Pedido #12", "Factura F2026-00042"."""
    return f"{translate(f'doc_kind_{doc.kind}')} {doc.number or f'#{doc.id}'}"


HELPERS = {"doc_url": doc_url, "doc_name": doc_name}  # for templates that list documents
