"""Prometheus metrics from the database (the truth) and Redis: GET /metrics (bearer API key).

Counts come from the tables, so every web process answers the same and nothing is lost
when a process restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response
from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from connector.models import Flow, Run, RunStatus, RunStep
from database import utcnow
from web import current_runtime
from web.auth import requires

bp = Blueprint("metrics", __name__)

# Step duration buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


@bp.get("/metrics")
@requires("read")
def metrics() -> Any:
    rt = current_runtime()
    lines: list[str] = []
    with rt.sessions() as s:
        lines += [
            "# HELP puente_runs Runs by flow and status.",
            "# TYPE puente_runs gauge",
        ]
        rows = s.execute(
            select(Flow.name, Run.status, func.count())
            .join(Flow, Flow.id == Run.flow_id)
            .group_by(Flow.name, Run.status)
            .order_by(Flow.name, Run.status)
        ).all()
        for flow, status, count in rows:
            lines.append(f'puente_runs{{flow="{_label(flow)}",status="{status}"}} {count}')

        lines += [
            "# HELP puente_step_duration_seconds How long each action step took.",
            "# TYPE puente_step_duration_seconds histogram",
        ]
        buckets = [
            func.sum(case((RunStep.duration_ms <= bound * 1000, 1), else_=0)) for bound in BUCKETS
        ]
        stats = s.execute(
            select(RunStep.action_key, func.count(), func.sum(RunStep.duration_ms), *buckets)
            .group_by(RunStep.action_key)
            .order_by(RunStep.action_key)
        ).all()
        for action, count, total_ms, *within in stats:
            label = f'action="{_label(action)}"'
            for bound, n in zip(BUCKETS, within, strict=True):
                lines.append(f'puente_step_duration_seconds_bucket{{{label},le="{bound}"}} {n}')
            lines.append(f'puente_step_duration_seconds_bucket{{{label},le="+Inf"}} {count}')
            lines.append(f"puente_step_duration_seconds_sum{{{label}}} {(total_ms or 0) / 1000}")
            lines.append(f"puente_step_duration_seconds_count{{{label}}} {count}")

        oldest: datetime | None = s.scalar(
            select(func.min(Run.created_at)).where(Run.status == RunStatus.QUEUED)
        )
    age = (utcnow() - oldest).total_seconds() if oldest else 0.0
    lines += [
        "# HELP puente_oldest_queued_run_age_seconds Age of the oldest run still queued.",
        "# TYPE puente_oldest_queued_run_age_seconds gauge",
        f"puente_oldest_queued_run_age_seconds {age:.3f}",
    ]
    try:
        depth = rt.queue.count
        up = 1
    except RedisError:
        depth, up = 0, 0
    lines += [
        "# HELP puente_queue_depth Jobs waiting in the RQ queue.",
        "# TYPE puente_queue_depth gauge",
        f"puente_queue_depth {depth}",
        "# HELP puente_redis_up Whether Redis answered.",
        "# TYPE puente_redis_up gauge",
        f"puente_redis_up {up}",
    ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
