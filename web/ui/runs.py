"""Runs for people: the list (by status, or found by deal, invoice or tax id), one run with
its steps, and replaying it."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connector import jobs, replay
from connector.errors import PuenteError
from connector.models import Run, RunKey, RunStatus
from web import current_runtime
from web.ui.common import PAGE, allow, blueprint, page_number, sessions

bp = blueprint("runs", __name__)


@bp.get("/runs")
def runs() -> Any:
    status = request.args.get("status") or None
    page = page_number()
    query = select(Run).options(selectinload(Run.flow), selectinload(Run.keys))
    if status in set(RunStatus):
        query = query.where(Run.status == status)
    else:
        status = None
    q = (request.args.get("q") or "").strip()
    if q:  # any business key: a deal id, an invoice number, a customer's tax id…
        query = query.where(
            Run.id.in_(select(RunKey.run_id).where(RunKey.value.in_({q, q.upper()})))
        )
    with sessions()() as s:
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
@allow("runs")
def run_replay(run_id: int) -> Any:
    """Run it again from its first unfinished step, optionally with corrected trigger data."""
    runtime = current_runtime()
    edited = (request.form.get("trigger") or "").strip()
    try:
        trigger = json.loads(edited) if edited else None
        if trigger is not None and not isinstance(trigger, dict):
            raise ValueError("not an object")
    except ValueError:
        flash("replay_bad_json", "error")
        return redirect(url_for("runs.run_detail", run_id=run_id))
    try:
        with sessions().begin() as s:
            replay.replay(s, runtime.registry, run_id, trigger=trigger)
    except PuenteError as exc:
        flash(exc.message, "error")
        return redirect(url_for("runs.run_detail", run_id=run_id))
    jobs.enqueue_runs(runtime, [run_id])
    flash("replay_ok", "ok")
    return redirect(url_for("runs.run_detail", run_id=run_id))


@bp.get("/runs/<int:run_id>")
def run_detail(run_id: int) -> Any:
    with sessions()() as s:
        run = s.get(Run, run_id)
        if run is None:
            abort(404)
        return render_template("ui/run.html", run=run)
