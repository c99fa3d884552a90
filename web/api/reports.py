"""Reports: won → invoiced conversion, time to invoice and to be paid, won deals never billed."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import jsonify, request

from invoicing import reports
from web.api import ApiError, bp, iso, page, sessions


def requested_days() -> tuple[date | None, date | None]:
    """?since= and ?until= as whole days (YYYY-MM-DD, both included), or a 400 naming the field."""
    days: dict[str, date | None] = {}
    for name in ("since", "until"):
        try:
            days[name] = reports.parse_day(request.args.get(name))
        except ValueError as exc:
            raise ApiError(400, "bad_request", f"{name}: {exc}", name) from None
    since, until = days["since"], days["until"]
    if since is not None and until is not None and until < since:
        raise ApiError(400, "bad_request", f"until ({until}) is before since ({since})", "until")
    return since, until


def _hours(value: Any) -> float | None:
    exact = reports.hours(value)
    return None if exact is None else float(exact)


def _durations(d: reports.Durations) -> dict[str, Any]:
    return {"count": d.count, "median": _hours(d.median), "mean": _hours(d.mean)}


def _money(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {currency: str(amount) for currency, amount in amounts.items()}


def group_json(group: reports.Group) -> dict[str, Any]:
    rate = group.conversion
    return {
        "won": group.won,
        "invoiced": group.invoiced,
        "paid": group.paid,
        "never_billed": group.never_billed,
        "draft_pending": group.draft_pending,
        "conversion_rate": (
            None if rate is None else float(rate.quantize(Decimal("0.0001"), ROUND_HALF_UP))
        ),
        "amount_won": _money(group.amount_won),
        "amount_invoiced": _money(group.amount_invoiced),
        "won_to_invoiced_hours": _durations(group.to_invoiced),
        "won_to_paid_hours": _durations(group.to_paid),
    }


def _owner(group: reports.Group) -> dict[str, Any]:
    owner = None if group.key is None else {"name": group.label, "email": group.email}
    return {"owner": owner, **group_json(group)}


def _campaign(group: reports.Group) -> dict[str, Any]:
    return {"campaign": group.label, **group_json(group)}


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


@bp.get("/reports/summary")
def reports_summary() -> Any:
    first, last = requested_days()
    since, until = reports.day_bounds(first, last)
    with sessions()() as s:
        result = reports.summary(s, since, until)
    return jsonify(
        {
            "since": _day(first),
            "until": _day(last),
            "timezone": "Europe/Madrid",
            "totals": group_json(result.totals),
            "by_owner": [_owner(g) for g in result.by_owner],
            "by_campaign": [_campaign(g) for g in result.by_campaign],
        }
    )


def unbilled_json(deal: reports.UnbilledDeal) -> dict[str, Any]:
    return {
        "deal_id": deal.id,
        "source": deal.source,
        "external_ref": deal.external_ref,
        "title": deal.title,
        "owner_name": deal.owner_name,
        "owner_email": deal.owner_email,
        "campaign": deal.campaign,
        "amount": None if deal.amount is None else str(deal.amount),
        "currency": deal.currency,
        "customer_name": deal.customer_name,
        "customer_tax_id": deal.customer_tax_id,
        "won_at": iso(deal.won_at),
        "age_days": deal.age_days,
        "invoice_id": deal.invoice_id,
        "invoice_status": deal.invoice_status,
        "draft_invoice_id": deal.draft_invoice_id,
    }


@bp.get("/reports/never-billed")
def reports_never_billed() -> Any:
    limit, offset = page()
    first, last = requested_days()
    since, until = reports.day_bounds(first, last)
    with sessions()() as s:
        result = reports.never_billed(s, since, until, limit, offset)
    return jsonify(
        {
            "items": [unbilled_json(d) for d in result.items],
            "total": result.total,
            "limit": result.limit,
            "offset": result.offset,
            "since": _day(first),
            "until": _day(last),
        }
    )
