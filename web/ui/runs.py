"""Runs for people: the list (by status, or found by deal, invoice or tax id), one run with
its steps, and replaying it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import selectinload

from connector import jobs, replay
from connector.errors import PuenteError
from connector.models import (
    Connection,
    Event,
    EventStatus,
    Flow,
    Run,
    RunKey,
    RunStatus,
    Subscription,
)
from connector.registry import Registry
from web import current_runtime
from web.hooks import REFUSED, REFUSED_KEPT
from web.i18n import translate
from web.ui.common import PAGE, allow, blueprint, page_number, sessions

bp = blueprint("runs", __name__)
MADRID = ZoneInfo("Europe/Madrid")  # a day in the filters is a day in Spain


@bp.get("/runs")
def runs() -> Any:
    """Runs newest first, by status, flow and day (Madrid), or found by any business key."""
    args = request.args
    status = args.get("status") if args.get("status") in set(RunStatus) else None
    flow_id = args.get("flow", type=int)
    since, until = _day(args.get("since")), _day(args.get("until"))
    page = page_number()
    query = select(Run).options(selectinload(Run.flow), selectinload(Run.keys))
    order: list[ColumnElement[Any]] = [Run.id.desc()]  # as the primary key and (status, id) are
    if status:
        query = query.where(Run.status == status)
    if flow_id:
        query = query.where(Run.flow_id == flow_id)
    if since:
        query = query.where(Run.created_at >= datetime.combine(since, time(), MADRID))
    if until:
        end = datetime.combine(until + timedelta(days=1), time(), MADRID)
        query = query.where(Run.created_at < end)
    if since or until:
        # Newest first by creation time, the order of the created_at index (SQLite's entries
        # end with the rowid; PostgreSQL sorts only runs created in the same instant): by id,
        # the whole day would be sorted. The id settles ties, so pages never overlap.
        order = [Run.created_at.desc(), Run.id.desc()]
    q = (args.get("q") or "").strip()
    if q:  # any business key: a deal id, an invoice number, a customer's tax id…
        names = key_names(current_runtime().registry)
        query = query.where(
            Run.id.in_(
                select(RunKey.run_id).where(
                    RunKey.name.in_(names), RunKey.value.in_({q, q.upper()})
                )
            )
        )
    with sessions()() as s:
        # One row past the page says whether there is a next one: no count of the whole log.
        rows = s.scalars(query.order_by(*order).limit(PAGE + 1).offset((page - 1) * PAGE)).all()
        flows = s.execute(select(Flow.id, Flow.name).order_by(Flow.name)).all()
        filters = {
            "status": status,
            "flow": flow_id,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "q": q or None,
        }
        return render_template(
            "ui/runs.html",
            runs=rows[:PAGE],
            status=status,
            statuses=list(RunStatus),
            flows=flows,
            filters=filters,
            page=page,
            has_next=len(rows) > PAGE,
            q=q,
            replayable=REPLAYABLE,
        )


# The keys the run log has had since 0009 turned its columns into rows, whatever is registered.
ALWAYS_SEARCHED = ("deal_ref", "invoice_ref", "customer_tax_id")


def key_names(registry: Registry) -> list[str]:
    """Every name a run's business key can have: what the triggers and actions declare (the
    intake and the runner write no other). Searching by name and value uses the run_keys
    (name, value) index; by value alone it would read every key of every run."""
    declared = {name for t in registry.triggers.values() for name, _ in t.business_keys}
    declared |= {name for a in registry.actions.values() for name, _ in a.business_keys}
    return sorted(declared.union(ALWAYS_SEARCHED))


@bp.get("/runs/refused")
def refused() -> Any:
    """Deliveries refused at the door: not signed right or unreadable (never stored; noted in
    Redis), and those whose data did not match the trigger (kept, with every field's error)."""
    rt = current_runtime()
    try:
        noted = [json.loads(raw) for raw in rt.redis.lrange(REFUSED, 0, REFUSED_KEPT - 1)]
    except RedisError:
        noted = []
    with sessions()() as s:
        rejected = s.scalars(
            select(Event)
            .where(Event.status == EventStatus.REJECTED)
            .order_by(Event.id.desc())
            .limit(REFUSED_KEPT)
        ).all()
        names = _source_names(s)
        items = [
            {
                "at": datetime.fromtimestamp(n["at"], UTC),
                "where": names.get(n["source"], n["source"]),
                "reason": n["error"],
                "errors": [],
                "payload": None,
            }
            for n in noted
        ] + [
            {
                "at": e.received_at,
                "where": names.get(e.source, e.source),
                "reason": "invalid_deal",
                "errors": e.errors or [],
                "payload": e.payload,
            }
            for e in rejected
        ]
        items.sort(key=lambda item: item["at"], reverse=True)
        return render_template("ui/refused.html", items=items[:REFUSED_KEPT])


def _source_names(s: Any) -> dict[str, str]:
    """ "subscription:3" → the webhook's name, "connection:2" → the connection's."""
    names = {
        f"subscription:{i}": n for i, n in s.execute(select(Subscription.id, Subscription.name))
    }
    names |= {f"connection:{i}": n for i, n in s.execute(select(Connection.id, Connection.name))}
    return names


REPLAYABLE = frozenset({RunStatus.FAILED, RunStatus.DEAD})
BULK_PACE = 5.0  # replays per second: a backlog does not flood the invoicing core or a CRM


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@bp.post("/runs/replay")
@allow("runs")
def runs_replay() -> Any:
    """Replay the failed runs ticked in the list, paced."""
    runtime = current_runtime()
    ids = sorted({int(i) for i in request.form.getlist("run_id") if i.isdigit()})[:500]
    if not ids:
        flash("replay_none_chosen", "error")
        return redirect(request.referrer or url_for("runs.runs"))
    try:
        with sessions().begin() as s:
            ids = list(  # only those that can be: a run that went on meanwhile is left alone
                s.scalars(select(Run.id).where(Run.id.in_(ids), Run.status.in_(REPLAYABLE)))
            )
            paced = replay.replay_many(s, runtime.registry, ids, BULK_PACE)
    except PuenteError:
        flash("replay_refused", "error")
        return redirect(request.referrer or url_for("runs.runs"))
    for item in paced:
        jobs.enqueue_later(runtime, item.run_id, item.delay, item.job)
    flash(translate("replay_many_ok").format(count=len(paced)), "ok")
    return redirect(request.referrer or url_for("runs.runs"))


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
        lang = str(g.get("lang", "es"))
        problems = "; ".join(f"{e.path}: {e.text(lang)}" for e in exc.errors)
        flash(
            f"{translate('replay_invalid')} {problems}" if problems else "replay_refused", "error"
        )
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
