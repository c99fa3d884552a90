"""The reports page: conversion by owner and campaign, time to invoice and to be paid, and
the won deals never billed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import render_template, request

from invoicing import reports as data
from web.ui.common import PAGE, blueprint, page_number, sessions

bp = blueprint("reports", __name__)


def _days(value: timedelta | None) -> Decimal | None:
    return data.days(value)


def _share(part: int, whole: int) -> str:
    """A CSS width: part of whole as a percentage with two decimals (dot, whatever the language)."""
    if whole <= 0 or part <= 0:
        return "0%"
    return f"{Decimal(part * 100) / Decimal(whole):.2f}%"


def _scale(groups: list[data.Group]) -> Decimal:
    """The longest median (in days) among these groups, for bars drawn to the same scale."""
    medians = [
        _days(d.median) for g in groups for d in (g.to_invoiced, g.to_paid) if d.median is not None
    ]
    return max([m for m in medians if m is not None and m > 0], default=Decimal(1))


def _bar(value: Decimal | None, scale: Decimal) -> str:
    if value is None or value <= 0 or scale <= 0:
        return "0%"
    return f"{min(value / scale, Decimal(1)) * 100:.2f}%"


def _range() -> tuple[date | None, date | None, str | None]:
    raw = {name: request.args.get(name) for name in ("since", "until")}
    days: dict[str, date | None] = {}
    for name, value in raw.items():
        try:
            days[name] = data.parse_day(value)
        except ValueError:
            return None, None, "reports_bad_date"
    first, last = days["since"], days["until"]
    if first is not None and last is not None and last < first:
        return None, None, "reports_bad_range"
    return first, last, None


@bp.get("/reports", endpoint="reports")
def reports_page() -> Any:
    first, last, error = _range()
    page = page_number()
    since, until = data.day_bounds(first, last)
    with sessions()() as s:
        result = data.summary(s, since, until)
        unbilled = data.never_billed(s, since, until, PAGE, (page - 1) * PAGE)
    everyone = [result.totals, *result.by_owner, *result.by_campaign]
    return render_template(
        "ui/reports.html",
        summary=result,
        unbilled=unbilled,
        since=first.isoformat() if first else (request.args.get("since") or ""),
        until=last.isoformat() if last else (request.args.get("until") or ""),
        filtered={k: v.isoformat() for k, v in (("since", first), ("until", last)) if v},
        error=error,
        page=page,
        has_next=page * PAGE < unbilled.total,
        scale=_scale(everyone),
        days=_days,
        share=_share,
        bar=_bar,
    ), 400 if error else 200
