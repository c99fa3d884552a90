"""Server-rendered pages for people: flows, runs, run detail, invoices, draft invoice."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connector.models import Flow, Run, RunStatus
from invoicing.models import Invoice
from web.auth import require_login, sign_in

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates")

MADRID = ZoneInfo("Europe/Madrid")
PAGE = 50


@bp.app_template_filter("local_time")
def local_time(value: datetime | None) -> str:
    """Show times in Madrid, where the users are."""
    return value.astimezone(MADRID).strftime("%d/%m/%Y %H:%M:%S") if value else "—"


@bp.app_template_filter("money")
def money(value: Decimal | None, currency: str = "EUR") -> str:
    if value is None:
        return "—"
    text = f"{value:,.2f}"
    if getattr(g, "lang", "es") == "es":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        return f"{text} €" if currency == "EUR" else f"{text} {currency}"
    return f"€{text}" if currency == "EUR" else f"{text} {currency}"


@bp.app_template_filter("number")
def number(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value if value.as_tuple().exponent == -2 else value.normalize(), "f")
    return text.replace(".", ",") if getattr(g, "lang", "es") == "es" else text


@bp.app_template_filter("price")
def price(value: Decimal) -> str:
    """A unit price with at least two decimals, and more only when it has them."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    many = isinstance(exponent, int) and exponent < -2
    return number(exact if many else exact.quantize(Decimal("0.01")))


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _sessions() -> Any:
    return current_app.extensions["puente"].sessions


def _local(target: str | None) -> str | None:
    """Only a path on this site: never bounce a signed-in user to another one."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None
    return None if urlsplit(target).netloc else target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        if sign_in(request.form.get("api_key", "")):
            return redirect(_local(request.args.get("next")) or url_for("ui.runs"))
        error = "bad_key"
    return render_template("ui/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/flows")
@require_login
def flows() -> Any:
    with _sessions()() as s:
        rows = s.scalars(
            select(Flow)
            .options(selectinload(Flow.subscription), selectinload(Flow.current_version))
            .order_by(Flow.id)
        ).all()
        public = current_app.extensions["puente"].settings.public_url
        return render_template("ui/flows.html", flows=rows, public_url=public)


@bp.get("/runs")
@require_login
def runs() -> Any:
    status = request.args.get("status") or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = select(Run).options(selectinload(Run.flow))
    if status in set(RunStatus):
        query = query.where(Run.status == status)
    else:
        status = None
    with _sessions()() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Run.id.desc()).limit(PAGE).offset((page - 1) * PAGE)).all()
        return render_template(
            "ui/runs.html",
            runs=rows,
            status=status,
            statuses=list(RunStatus),
            page=page,
            has_next=page * PAGE < total,
            total=total,
        )


@bp.get("/runs/<int:run_id>")
@require_login
def run_detail(run_id: int) -> Any:
    with _sessions()() as s:
        run = s.get(Run, run_id)
        if run is None:
            abort(404)
        return render_template("ui/run.html", run=run)


@bp.get("/invoices")
@require_login
def invoices() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    with _sessions()() as s:
        total = s.scalar(select(func.count()).select_from(Invoice)) or 0
        rows = s.scalars(
            select(Invoice)
            .options(selectinload(Invoice.customer))
            .order_by(Invoice.id.desc())
            .limit(PAGE)
            .offset((page - 1) * PAGE)
        ).all()
        return render_template(
            "ui/invoices.html", invoices=rows, page=page, has_next=page * PAGE < total
        )


@bp.get("/invoices/<int:invoice_id>")
@require_login
def invoice_detail(invoice_id: int) -> Any:
    with _sessions()() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None:
            abort(404)
        return render_template("ui/invoice.html", invoice=invoice)
