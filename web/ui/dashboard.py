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


def bars(columns: list[dict[str, int]], series: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Stacked bars in a 0..100 box: for each column, its rectangles (x, y, width, height,
    colour, series), scaled to the tallest column."""
    tallest = max((sum(c.values()) for c in columns), default=0) or 1
    width = 100 / max(len(columns), 1)
    shapes = []
    for i, column in enumerate(columns):
        bottom = 100.0
        for name, colour in series:
            height = 100 * column.get(name, 0) / tallest
            if height > 0:
                bottom -= height
                shapes.append(
                    {
                        "x": round(i * width + width * 0.1, 3),
                        "y": round(bottom, 3),
                        "w": round(width * 0.8, 3),
                        "h": round(height, 3),
                        "colour": colour,
                        "name": name,
                        "value": column[name],
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
        runs_chart=bars([h.counts for h in hours], tuple((str(k), v) for k, v in SERIES)),
        series=SERIES,
        success=(100 * succeeded / finished) if finished else None,
        total_runs=sum(h.total for h in hours),
        queue=waiting,
        waited=(now - waiting.oldest) if waiting.oldest else None,
        p50=reports.percentile(drafts, 0.5),
        p95=reports.percentile(drafts, 0.95),
        drafted=len(drafts),
        weeks=weeks,
        weeks_chart=_grouped(conversion),
    )


CONVERSION = (("won", "#8a93a5"), ("invoiced", "#1f5fbf"), ("paid", "#1a7f37"))


def _grouped(columns: list[dict[str, int]]) -> dict[str, Any]:
    """Side-by-side bars (won, invoiced, paid) per week, in a 0..100 box."""
    tallest = max((max(c.values()) for c in columns), default=0) or 1
    width = 100 / max(len(columns), 1)
    shapes = []
    for i, column in enumerate(columns):
        for j, (name, colour) in enumerate(CONVERSION):
            height = 100 * column[name] / tallest
            shapes.append(
                {
                    "x": round(i * width + width * (0.1 + 0.27 * j), 3),
                    "y": round(100 - height, 3),
                    "w": round(width * 0.25, 3),
                    "h": round(height, 3),
                    "colour": colour,
                    "name": name,
                    "value": column[name],
                }
            )
    return {"shapes": shapes, "tallest": tallest}
