"""Flows for people: the list, and the editor: the flow as JSON, checked on every save with a
preview on sample data, enabled only without problems, and a dry run that shows what each step
would do."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from connector import admin
from connector.checks import check_flow
from connector.dryrun import dry_run
from connector.errors import FieldError, PuenteError
from connector.models import Flow, FlowVersion
from web import current_runtime
from web.i18n import translate
from web.ui.common import NEW_FLOW_SECRET, allow, blueprint, sessions, shown_once

bp = blueprint("flows", __name__)

FUNCTION_HELP = [
    ("coalesce(a, b, ...)", "func_coalesce"),
    ("lookup('tabla', clave), lookup_or('tabla', clave, defecto)", "func_lookup"),
    ("round(importe, `2`), decimal(x), multiply(a, b), sum_decimal(lista)", "func_amounts"),
    ("to_date(fecha), to_date_in(fecha, 'zona'), to_timezone(fecha, 'zona')", "func_dates"),
    ("format_date(fecha, '%d/%m/%Y'), add_days(fecha, `30`)", "func_dates"),
    ("upper, lower, trim, left(t, `n`), replace(t, 'a', 'b'), concat(...), nif(t)", "func_text"),
]


@bp.get("/flows")
def flows() -> Any:
    with sessions()() as s:
        rows = s.scalars(
            select(Flow)
            .options(selectinload(Flow.subscription), selectinload(Flow.current_version))
            .order_by(Flow.id)
        ).all()
        public = current_runtime().settings.public_url
        return render_template("ui/flows.html", flows=rows, public_url=public)


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        return None, f"JSON: {exc}"
    if not isinstance(document, dict):
        return None, "JSON: the flow must be an object"
    return document, None


@bp.route("/flows/<int:flow_id>", methods=["GET", "POST"])
@allow("flows")
def flow_edit(flow_id: int) -> Any:
    rt = current_runtime()
    with sessions()() as s:
        flow = s.get(Flow, flow_id)
        if flow is None:
            abort(404)
        stored = flow.current_version.document if flow.current_version else {}
        enabled, version = flow.enabled, flow.current_version.version if flow.current_version else 0
    text = request.form.get("document") or json.dumps(stored, ensure_ascii=False, indent=2)
    document, problem = _parse(text)
    report, trial, status = None, None, 200
    action = request.form.get("do")
    if document is not None:  # tried on the sample when asked (a POST), never on reading
        report = check_flow(document, rt.registry, preview=request.method == "POST")
    if request.method == "POST" and document is not None and action == "save":
        try:
            with sessions().begin() as s:
                saved = admin.save_flow(s, rt.registry, document, flow=s.get_one(Flow, flow_id))
            said = "flow_saved" if saved.report.ok else "flow_saved_draft"
            flash(said, "ok")
            return redirect(url_for("flows.flow_edit", flow_id=flow_id))
        except PuenteError as exc:  # its problems are listed under the editor
            flash("flow_save_refused" if exc.errors else exc.message, "error")
            status = 422
    elif request.method == "POST" and document is not None and action == "dry_run":
        try:
            result = dry_run(rt.sessions, rt.registry, document, tools=rt.tools)
            trial = {"status": result.status, "steps": [asdict(st) for st in result.steps]}
        except PuenteError as exc:
            flash("flow_dry_run_refused" if exc.errors else exc.message, "error")
            status = 422
    if problem:
        status = 422
    return render_template(
        "ui/flow.html",
        flow_id=flow_id,
        text=text,
        problem=problem,
        report=report,
        enabled=enabled,
        version=version,
        trial=trial,
        functions=FUNCTION_HELP,
        errors_by_step=_by_step(report.errors if report else []),
        document=document if document is not None else stored,
        webhook_secret=shown_once(NEW_FLOW_SECRET),
    ), status


@bp.post("/flows/<int:flow_id>/<any(enable, disable):change>")
@allow("flows")
def flow_switch(flow_id: int, change: str) -> Any:
    rt = current_runtime()
    try:
        with sessions().begin() as s:
            flow = s.get(Flow, flow_id)
            if flow is None:
                abort(404)
            admin.set_enabled(s, rt.registry, flow, change == "enable")
        said = "flow_enabled" if change == "enable" else "flow_disabled"
        flash(said, "ok")
    except PuenteError as exc:  # its problems are listed on the flow's page
        flash("flow_enable_refused" if exc.errors else exc.message, "error")
    return redirect(url_for("flows.flow_edit", flow_id=flow_id))


@bp.get("/flows/<int:flow_id>/versions")
def flow_versions(flow_id: int) -> Any:
    """Every saved version, newest first, each with what changed from the one before."""
    with sessions()() as s:
        flow = s.get(Flow, flow_id)
        if flow is None:
            abort(404)
        versions = s.scalars(
            select(FlowVersion)
            .where(FlowVersion.flow_id == flow_id)
            .order_by(FlowVersion.version.desc())
        ).all()
        current = flow.current_version.version if flow.current_version else None
        shown = [
            {
                "version": v.version,
                "created_at": v.created_at,
                "current": v.version == current,
                "changes": _changes(
                    versions[i + 1].document if i + 1 < len(versions) else {}, v.document
                ),
            }
            for i, v in enumerate(versions)
        ]
        return render_template(
            "ui/flow_versions.html", flow_id=flow_id, name=flow.name, versions=shown
        )


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines that differ between two documents as pretty JSON: ("+"|"-"|" ", line)."""
    old = json.dumps(before, ensure_ascii=False, indent=2).splitlines() if before else []
    new = json.dumps(after, ensure_ascii=False, indent=2).splitlines()
    diff = difflib.unified_diff(old, new, lineterm="", n=2)
    return [(line[0], line[1:]) for line in diff if not line.startswith(("---", "+++", "@@"))]


@bp.post("/flows/<int:flow_id>/versions/<int:version>/restore")
@allow("flows")
def flow_restore(flow_id: int, version: int) -> Any:
    """Save an earlier version's document as the newest version (checked like any save)."""
    rt = current_runtime()
    try:
        with sessions().begin() as s:
            old = s.scalar(
                select(FlowVersion).where(
                    FlowVersion.flow_id == flow_id, FlowVersion.version == version
                )
            )
            if old is None:
                abort(404)
            admin.save_flow(s, rt.registry, old.document, flow=s.get_one(Flow, flow_id))
    except PuenteError as exc:
        flash("flow_save_refused" if exc.errors else exc.message, "error")
        return redirect(url_for("flows.flow_versions", flow_id=flow_id))
    flash(translate("flow_restored").format(version=version), "ok")
    return redirect(url_for("flows.flow_edit", flow_id=flow_id))


def _by_step(errors: list[FieldError]) -> dict[str, list[FieldError]]:
    grouped: dict[str, list[FieldError]] = {}
    for error in errors:
        grouped.setdefault(error.path.split(".")[0], []).append(error)
    return grouped
