"""Runs: the log of every flow execution, with each step's input, output and error."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connector.models import Run, RunStatus
from web.api import ApiError, bp, iso, not_found, page, sessions, whole
from web.auth import require_api_key


def run_json(run: Run, with_steps: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "flow": {"id": run.flow_id, "name": run.flow.name, "version": run.flow_version.version},
        "event_id": run.event_id,
        "deal_ref": run.deal_ref,
        "attempts": run.attempts,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
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
                "started_at": iso(step.started_at),
                "finished_at": iso(step.finished_at),
                "duration_ms": step.duration_ms,
            }
            for step in run.steps
        ]
    return data


@bp.get("/runs")
@require_api_key
def list_runs() -> Any:
    limit, offset = page()
    query = select(Run).options(selectinload(Run.flow), selectinload(Run.flow_version))
    status = request.args.get("status")
    if status:
        if status not in set(RunStatus):
            raise ApiError(
                400, "bad_request", f"status must be one of: {', '.join(RunStatus)}", "status"
            )
        query = query.where(Run.status == status)
    if request.args.get("deal_ref"):
        query = query.where(Run.deal_ref == request.args["deal_ref"])
    if request.args.get("flow_id"):
        query = query.where(Run.flow_id == whole("flow_id", 0, minimum=1))
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        runs = s.scalars(query.order_by(Run.id.desc()).limit(limit).offset(offset)).all()
        return jsonify(
            {"items": [run_json(r) for r in runs], "total": total, "limit": limit, "offset": offset}
        )


@bp.get("/runs/<int:run_id>")
@require_api_key
def get_run(run_id: int) -> Any:
    with sessions()() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise not_found("run", run_id)
        return jsonify(run_json(run, with_steps=True))
