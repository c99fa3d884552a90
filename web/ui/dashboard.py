"""The dashboard: runs per hour by status, success rate, the queue, time from won to draft,
and won → invoiced → paid by week. Charts are SVG drawn here (no script, no CDN), each with
its figures in a table for screen readers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from connector import stats
from connector.models import RunStatus
from database import utcnow
from invoicing import issuing, reports
from web.ui.common import blueprint, sessions

bp = blueprint("dashboard", __name__)

HOURS = 24
WEEKS = 12
# Stacked from the bottom, in this order, with the badges' colours.
SERIES = (
    (RunStatus.SUCCEEDED, "#1a7f37"),
    (RunStatus.FAILED, "#c62828"),
    (RunStatus.DEAD, "#7a1c1c"),
    (RunStatus.STOPPED, "#8a93a5"),
    (RunStatus.RUNNING, "#1f5fbf"),
    (RunStatus.QUEUED, "#9a6700"),
)
CONVERSION = (("won", "#8a93a5"), ("invoiced", "#1f5fbf"), ("paid", "#1a7f37"))


def chart(
    columns: list[dict[str, int]], series: tuple[tuple[str, str], ...], stacked: bool
) -> dict[str, Any]:
    """Bars in a 0..100 box, scaled to the tallest: for each column, one rectangle (x, y,
    width, height, colour, series, value) per series, stacked or side by side."""
    heights = [sum(c.values()) if stacked else max(c.values(), default=0) for c in columns]
    tallest = max(heights, default=0) or 1
    width = 100 / max(len(columns), 1)
    shapes = []
    for i, column in enumerate(columns):
        bottom = 100.0
        for j, (name, colour) in enumerate(series):
            value = column.get(name, 0)
            height = 100 * value / tallest
            if stacked:
                bottom -= height
                x, w, y = i * width + width * 0.1, width * 0.8, bottom
            else:
                x, w, y = i * width + width * (0.1 + 0.27 * j), width * 0.25, 100 - height
            if height > 0:
                shapes.append(
                    {
                        "x": round(x, 3),
                        "y": round(y, 3),
                        "w": round(w, 3),
                        "h": round(height, 3),
                        "colour": colour,
                        "name": name,
                        "value": value,
                    }
                )
    return {"shapes": shapes, "tallest": tallest}


@bp.get("/dashboard")
def dashboard() -> Any:
    now = utcnow()
    with sessions()() as s:
        hours = stats.runs_per_hour(s, now, HOURS)
        waiting = stats.queue(s)
        drafts = reports.won_to_draft(s, now - timedelta(days=30))
        weeks = reports.weekly(s, WEEKS, issuing.today())
    finished = sum(h.counts.get(st, 0) for h in hours for st in ("succeeded", "failed", "dead"))
    succeeded = sum(h.counts.get("succeeded", 0) for h in hours)
    conversion = [{"won": w.won, "invoiced": w.invoiced, "paid": w.paid} for w in weeks]
    return render_template(
        "ui/dashboard.html",
        hours=hours,
        runs_chart=chart([h.counts for h in hours], tuple((str(k), v) for k, v in SERIES), True),
        series=SERIES,
        success=(100 * succeeded / finished) if finished else None,
        total_runs=sum(h.total for h in hours),
        queue=waiting,
        waited=(now - waiting.oldest) if waiting.oldest else None,
        p50=reports.percentile(drafts, 0.5),
        p95=reports.percentile(drafts, 0.95),
        drafted=len(drafts),
        weeks=weeks,
        weeks_chart=chart(conversion, CONVERSION, stacked=False),
    )
