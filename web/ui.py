"""Server-rendered pages for people: flows, runs, invoices (review, issue, pay), settings."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from connector import jobs, replay
from connector.errors import PuenteError
from connector.models import Flow, Run, RunStatus
from invoicing import chain, corrections, issuing, mailer, payments, verifactu
from invoicing.errors import InvoicingError
from invoicing.models import Invoice, Issuer
from web import csrf
from web.auth import require_login, sign_in

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates")
csrf.protect(bp)

PAGE = 50


def _sessions() -> Any:
    return current_app.extensions["puente"].sessions


MAX_PAGE = 1_000_000  # beyond any list; its offset still fits a database integer


def page_number() -> int:
    """The ?page= asked for: 1 when missing or not a number, at most MAX_PAGE."""
    return min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)


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
    page = page_number()
    query = select(Run).options(selectinload(Run.flow))
    if status in set(RunStatus):
        query = query.where(Run.status == status)
    else:
        status = None
    q = (request.args.get("q") or "").strip()
    if q:  # a deal id, an invoice number or a customer's tax id
        query = query.where(
            or_(Run.deal_ref == q, Run.invoice_ref == q, Run.customer_tax_id == q.upper())
        )
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
            q=q,
        )


@bp.post("/runs/<int:run_id>/replay")
@require_login
def run_replay(run_id: int) -> Any:
    """Run it again from its first unfinished step, optionally with corrected trigger data."""
    runtime = current_app.extensions["puente"]
    edited = (request.form.get("trigger") or "").strip()
    try:
        trigger = json.loads(edited) if edited else None
        if trigger is not None and not isinstance(trigger, dict):
            raise ValueError("not an object")
    except ValueError:
        flash("replay_bad_json", "error")
        return redirect(url_for("ui.run_detail", run_id=run_id))
    try:
        with _sessions().begin() as s:
            replay.replay(s, runtime.registry, run_id, trigger=trigger)
    except PuenteError as exc:
        flash(exc.message, "error")
        return redirect(url_for("ui.run_detail", run_id=run_id))
    jobs.enqueue_runs(runtime, [run_id])
    flash("replay_ok", "ok")
    return redirect(url_for("ui.run_detail", run_id=run_id))


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
    page = page_number()
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
        record = chain.alta_of(invoice) if invoice.number else None
        issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        return render_template(
            "ui/invoice.html",
            invoice=invoice,
            record=record,
            issuer=issuer,
            today=date.today().isoformat(),
        )


@bp.get("/invoices/<int:invoice_id>/qr.svg")
@require_login
def invoice_qr(invoice_id: int) -> Any:
    with _sessions()() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None or invoice.number is None:
            abort(404)
        url = chain.qr_url_of(invoice)
    return Response(verifactu.qr_svg(url), mimetype="image/svg+xml")


def _attempt(invoice_id: int, action: Any, done: str) -> Any:
    """Run an invoicing operation for a form; show its refusal in plain words."""
    try:
        with _sessions().begin() as s:
            action(s)
        flash(done, "ok")
    except InvoicingError as exc:
        flash(str(exc), "error")
    return redirect(url_for("ui.invoice_detail", invoice_id=invoice_id))


@bp.post("/invoices/<int:invoice_id>/issue")
@require_login
def invoice_issue(invoice_id: int) -> Any:
    return _attempt(invoice_id, lambda s: issuing.issue(s, invoice_id), "issued_ok")


@bp.app_context_processor
def _form_once() -> dict[str, Any]:
    return {"form_once": lambda: uuid.uuid4().hex}


def _once() -> str | None:
    """The idempotency key of the form sent (its hidden `once` field): a form sent twice, by a
    double click or a browser's resend, records one payment or one draft."""
    once = request.form.get("once", "")
    return f"ui-form:{once}" if re.fullmatch(r"[0-9a-f]{32}", once) else None


@bp.post("/invoices/<int:invoice_id>/payments")
@require_login
def invoice_pay(invoice_id: int) -> Any:
    form = request.form
    try:
        paid_on = date.fromisoformat(form.get("paid_on") or date.today().isoformat())
    except ValueError:
        flash("paid_on_invalid", "error")
        return redirect(url_for("ui.invoice_detail", invoice_id=invoice_id))
    amount = (form.get("amount") or "").replace(",", ".").strip()
    return _attempt(
        invoice_id,
        lambda s: payments.record_payment(
            s,
            invoice_id,
            amount,
            paid_on,
            method=form.get("method") or None,
            reference=form.get("reference") or None,
            idempotency_key=_once(),
        ),
        "payment_ok",
    )


@bp.post("/invoices/<int:invoice_id>/send")
@require_login
def invoice_send(invoice_id: int) -> Any:
    """E-mail the invoice; a failed attempt is kept in the history, with its reason."""
    runtime = current_app.extensions["puente"]
    to = (request.form.get("to") or "").strip() or None
    try:
        with _sessions().begin() as s:
            try:
                mailer.send_invoice(
                    s,
                    invoice_id,
                    mailer.MailSettings.from_settings(runtime.settings),
                    to=to,
                    credentials=runtime.facturae_credentials,
                )
                flash("sent_ok", "ok")
            except mailer.MailDeliveryError as exc:  # committed: the attempt is recorded
                flash(str(exc), "error")
    except InvoicingError as exc:
        flash(str(exc), "error")
    return redirect(url_for("ui.invoice_detail", invoice_id=invoice_id))


@bp.post("/invoices/<int:invoice_id>/cancel")
@require_login
def invoice_cancel(invoice_id: int) -> Any:
    reason = request.form.get("reason") or ""
    return _attempt(invoice_id, lambda s: corrections.cancel(s, invoice_id, reason), "cancelled_ok")


@bp.post("/invoices/<int:invoice_id>/rectify")
@require_login
def invoice_rectify(invoice_id: int) -> Any:
    """Draft a rectifying invoice by substitution, to be reviewed and issued like any draft."""
    form = request.form
    try:
        with _sessions().begin() as s:
            draft = corrections.rectify(
                s,
                invoice_id,
                invoice_type=form.get("invoice_type", ""),
                method="S",
                reason=form.get("reason") or "",
                idempotency_key=_once(),
            )
            draft_id = draft.id
    except InvoicingError as exc:
        flash(str(exc), "error")
        return redirect(url_for("ui.invoice_detail", invoice_id=invoice_id))
    flash("rectify_ok", "ok")
    return redirect(url_for("ui.invoice_detail", invoice_id=draft_id))


@bp.route("/settings", methods=["GET", "POST"])
@require_login
def settings() -> Any:
    """Our company's fiscal data: needed before the first invoice is issued."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    if request.method == "POST":
        values = {
            k: (request.form.get(k) or "").strip() for k in issuing.IssuerData.__annotations__
        }
        data = {k: v for k, v in values.items() if v}
        try:
            with _sessions().begin() as s:
                issuing.configure_issuer(
                    s,
                    issuing.IssuerData(
                        **{
                            "tax_id": "",
                            "name": "",
                            "street": "",
                            "postal_code": "",
                            "city": "",
                            "province": "",
                            **data,
                        }
                    ),
                )
            flash("settings_ok", "ok")
            return redirect(url_for("ui.settings"))
        except InvoicingError as exc:
            errors = dict(getattr(exc, "errors", [])) or {"": str(exc)}
    with _sessions()() as s:
        issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        if not values and issuer is not None:
            values = {k: getattr(issuer, k) or "" for k in issuing.IssuerData.__annotations__}
        series = list(issuer.series) if issuer else []
        return render_template(
            "ui/settings.html", values=values, errors=errors, series=series
        ), 422 if errors else 200


from web import (  # noqa: E402,F401  (more pages on this blueprint)
    ui_catalog,
    ui_documents,
    ui_flows,
    ui_print,
    ui_reports,
)
