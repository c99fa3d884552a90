"""Runs: the log of every flow execution, with each step's input, output and error."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from connector import jobs, replay
from connector.models import Run, RunKey, RunStatus
from web import current_runtime
from web.api import (
    ApiError,
    bp,
    is_id,
    iso,
    json_body,
    listing,
    not_found,
    page,
    sessions,
    whole,
)

SEARCH_KEYS = ("deal_ref", "invoice_ref", "customer_tax_id")


def runs_with_key(name: str, value: str) -> Select[Any]:
    """The ids of the runs with business key `name` = `value`."""
    return select(RunKey.run_id).where(RunKey.name == name, RunKey.value == value)


def run_json(run: Run, with_steps: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "flow": {"id": run.flow_id, "name": run.flow.name, "version": run.flow_version.version},
        "event_id": run.event_id,
        "deal_ref": run.key("deal_ref"),
        "invoice_ref": run.key("invoice_ref"),
        "customer_tax_id": run.key("customer_tax_id"),
        "keys": {key.name: key.value for key in run.keys},
        "attempts": run.attempts,
        "replays": run.replays,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
    }
    if with_steps:
        data["trigger"] = run.event.payload
        data["trigger_override"] = run.trigger_override
        data["history"] = [
            {
                "attempt": a.attempt,
                "status": a.status,
                "flow_version_id": a.flow_version_id,
                "edited_trigger": a.edited_trigger,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "error": a.error,
            }
            for a in run.attempts_log
        ]
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
                "queue_wait_ms": step.queue_wait_ms,
            }
            for step in run.steps
        ]
    return data


@bp.get("/runs")
def list_runs() -> Any:
    limit, offset = page()
    query = select(Run).options(
        selectinload(Run.flow), selectinload(Run.flow_version), selectinload(Run.keys)
    )
    status = request.args.get("status")
    if status:
        if status not in set(RunStatus):
            raise ApiError(
                400, "bad_request", f"status must be one of: {', '.join(RunStatus)}", "status"
            )
        query = query.where(Run.status == status)
    # Any business key a trigger or action declares: ?deal_ref=…, ?invoice_ref=…, or
    # ?key.<name>=… for the others.
    for arg, value in request.args.items():
        name = arg.removeprefix("key.")
        if value and (arg.startswith("key.") or name in SEARCH_KEYS):
            query = query.where(Run.id.in_(runs_with_key(name, value)))
    if request.args.get("flow_id"):
        query = query.where(Run.flow_id == whole("flow_id", 0, minimum=1))
    return listing(query, Run.id.desc(), run_json, limit, offset)


@bp.get("/runs/<int:run_id>")
def get_run(run_id: int) -> Any:
    with sessions()() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise not_found("run", run_id)
        return jsonify(run_json(run, with_steps=True))


MAX_BULK_REPLAY = 500


@bp.errorhandler(replay.ReplayError)
def _not_replayable(exc: replay.ReplayError) -> Any:
    return ApiError(409, "conflict", exc.message).response()


@bp.post("/runs/<int:run_id>/replay")
def replay_run(run_id: int) -> Any:
    """Queue a finished run again, resuming after its last finished step.

    Body (optional): {"trigger": {...edited trigger item...}, "version": "original"|"current"}.
    """
    data = json_body() if request.get_data() else {}
    trigger = data.get("trigger")
    if trigger is not None and not isinstance(trigger, dict):
        raise ApiError(422, "invalid", "trigger must be a trigger item (an object)", "trigger")
    rt = current_runtime()
    with sessions().begin() as s:
        if s.get(Run, run_id) is None:
            raise not_found("run", run_id)
        replay.replay(
            s, rt.registry, run_id, trigger=trigger, version=str(data.get("version", "original"))
        )
    jobs.enqueue_runs(rt, [run_id])
    with sessions()() as s:
        return jsonify(run_json(s.get_one(Run, run_id), with_steps=True)), 202


@bp.post("/runs/replay")
def replay_runs() -> Any:
    """Replay many runs, paced: {"run_ids": [...]} or {"status": "dead", "flow_id": ...},
    at most 500 at a time, "per_second" apart (default 5)."""
    data = json_body()
    per_second = data.get("per_second", 5)
    if not isinstance(per_second, int | float) or not 0 < per_second <= 100:
        raise ApiError(422, "invalid", "per_second must be a number from 0 to 100", "per_second")
    rt = current_runtime()
    with sessions().begin() as s:
        ids = data.get("run_ids")
        if ids is None:
            status = data.get("status")
            if status not in (RunStatus.DEAD, RunStatus.FAILED):
                raise ApiError(
                    422, "invalid", 'give "run_ids", or "status": "dead" or "failed"', "status"
                )
            query = select(Run.id).where(Run.status == status).order_by(Run.id)
            if data.get("flow_id") is not None:
                if not is_id(data["flow_id"]):
                    raise ApiError(422, "invalid", "flow_id must be a flow's id", "flow_id")
                query = query.where(Run.flow_id == data["flow_id"])
            ids = list(s.scalars(query.limit(MAX_BULK_REPLAY)))
        if not isinstance(ids, list) or not all(is_id(i) for i in ids):
            raise ApiError(422, "invalid", "run_ids must be a list of run ids", "run_ids")
        if len(ids) > MAX_BULK_REPLAY:
            raise ApiError(422, "invalid", f"at most {MAX_BULK_REPLAY} runs at a time", "run_ids")
        paced = replay.replay_many(s, rt.registry, ids, float(per_second))
    for item in paced:
        jobs.enqueue_later(rt, item.run_id, item.delay, item.job)
    return jsonify(
        {"replayed": [p.run_id for p in paced], "seconds": paced[-1].delay if paced else 0}
    ), 202
