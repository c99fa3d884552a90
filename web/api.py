"""JSON API /api/v1: runs and invoices, authenticated with bearer API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connector.models import Run, RunStatus
from invoicing.models import Invoice
from web.auth import require_api_key

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIMIT = 200


def _page() -> tuple[int, int]:
    limit = _whole("limit", 50, minimum=1)
    return min(limit, MAX_LIMIT), _whole("offset", 0, minimum=0)


def _whole(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number, got {raw!r}", name) from None
    if value < minimum:
        raise _BadRequest(f"{name} must be at least {minimum}", name)
    return value


class _BadRequest(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


@bp.errorhandler(_BadRequest)
def _bad_request(exc: _BadRequest) -> Any:
    return jsonify({"error": "bad_request", "message": exc.message, "field": exc.field}), 400


def _not_found(what: str, ident: int) -> Any:
    return jsonify({"error": "not_found", "message": f"{what} {ident} does not exist"}), 404


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_json(run: Run, with_steps: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "flow": {"id": run.flow_id, "name": run.flow.name, "version": run.flow_version.version},
        "event_id": run.event_id,
        "deal_ref": run.deal_ref,
        "attempts": run.attempts,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
    }
    if with_steps:
        data["trigger"] = run.event.payload
        data["steps"] = [
            {
                "step_id": step.step_id,
                "action": step.action_key,
                "status": step.status,
                "attempts": step.attempts,
                "input": step.input,
                "output": step.output,
                "error": step.error,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "duration_ms": step.duration_ms,
            }
            for step in run.steps
        ]
    return data


def invoice_json(invoice: Invoice, with_lines: bool = False) -> dict[str, Any]:
    customer = invoice.customer
    data: dict[str, Any] = {
        "id": invoice.id,
        "status": invoice.status,
        "number": invoice.number,
        "issue_date": _iso(invoice.issue_date),
        "currency": invoice.currency,
        "customer": {"id": customer.id, "name": customer.name, "tax_id": customer.tax_id},
        "source": invoice.source,
        "external_ref": invoice.external_ref,
        "totals": {
            "base": str(invoice.base_total),
            "tax": str(invoice.tax_total),
            "total": str(invoice.total),
        },
        "created_at": _iso(invoice.created_at),
    }
    if with_lines:
        data["customer"].update(
            email=customer.email,
            address={
                "street": customer.street,
                "postal_code": customer.postal_code,
                "city": customer.city,
                "province": customer.province,
                "country": customer.country,
            },
        )
        data["lines"] = [
            {
                "position": line.position,
                "sku": line.sku,
                "description": line.description,
                "quantity": _plain(line.quantity),
                "unit_price": _plain(line.unit_price),
                "discount_percent": _plain(line.discount_percent),
                "tax_rate": _plain(line.tax_rate),
                "gross": str(line.gross),
                "discount": str(line.discount),
                "base": str(line.base),
            }
            for line in invoice.lines
        ]
        data["taxes"] = [
            {"rate": _plain(t.rate), "base": str(t.base), "amount": str(t.amount)}
            for t in invoice.taxes
        ]
        data["notes"] = invoice.notes
    return data


def _plain(value: Any) -> str:
    """A decimal without trailing zeros: 20.00000000 → '20', 95.5 → '95.5'."""
    text = format(value.normalize(), "f")
    return text


@bp.get("/runs")
@require_api_key
def list_runs() -> Any:
    limit, offset = _page()
    query = select(Run).options(selectinload(Run.flow), selectinload(Run.flow_version))
    status = request.args.get("status")
    if status:
        if status not in set(RunStatus):
            raise _BadRequest(f"status must be one of: {', '.join(RunStatus)}", "status")
        query = query.where(Run.status == status)
    if request.args.get("deal_ref"):
        query = query.where(Run.deal_ref == request.args["deal_ref"])
    if request.args.get("flow_id"):
        try:
            query = query.where(Run.flow_id == int(request.args["flow_id"]))
        except ValueError:
            raise _BadRequest("flow_id must be a whole number", "flow_id") from None
    with current_app.extensions["puente"].sessions() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        runs = s.scalars(query.order_by(Run.id.desc()).limit(limit).offset(offset)).all()
        return jsonify(
            {"items": [run_json(r) for r in runs], "total": total, "limit": limit, "offset": offset}
        )


@bp.get("/runs/<int:run_id>")
@require_api_key
def get_run(run_id: int) -> Any:
    with current_app.extensions["puente"].sessions() as s:
        run = s.get(Run, run_id)
        if run is None:
            return _not_found("run", run_id)
        return jsonify(run_json(run, with_steps=True))


@bp.get("/invoices")
@require_api_key
def list_invoices() -> Any:
    limit, offset = _page()
    query = select(Invoice).options(selectinload(Invoice.customer))
    for field in ("status", "external_ref", "source"):
        if request.args.get(field):
            query = query.where(getattr(Invoice, field) == request.args[field])
    with current_app.extensions["puente"].sessions() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        invoices = s.scalars(query.order_by(Invoice.id.desc()).limit(limit).offset(offset)).all()
        return jsonify(
            {
                "items": [invoice_json(i) for i in invoices],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )


@bp.get("/invoices/<int:invoice_id>")
@require_api_key
def get_invoice(invoice_id: int) -> Any:
    with current_app.extensions["puente"].sessions() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None:
            return _not_found("invoice", invoice_id)
        return jsonify(invoice_json(invoice, with_lines=True))
