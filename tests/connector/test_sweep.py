"""Nothing is lost: the database is the truth, and the sweeper re-enqueues what Redis lost."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from connector import jobs
from connector.db import utcnow
from connector.models import Run, RunStatus
from connector.runtime import build_runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal
from web import create_app


def overdue(rt, *run_ids: int) -> None:
    with rt.sessions.begin() as s:
        s.execute(
            update(Run)
            .where(Run.id.in_(run_ids))
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )


def statuses(rt) -> list[str]:
    with rt.sessions() as s:
        return list(s.scalars(select(Run.status).order_by(Run.id)))


def invoices(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Invoice)) or 0


def test_runs_queued_when_redis_was_flushed_are_enqueued_again_and_run_once(rt, client):
    hook = make_hook(rt)
    run_ids = [post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(3)]
    rt.redis.flushdb()  # Redis restarted without persistence: the jobs are gone
    assert jobs.sweep(rt) == []  # not overdue yet: the sweeper leaves them alone

    overdue(rt, *run_ids)
    assert jobs.sweep(rt) == run_ids
    drain(rt)

    assert statuses(rt) == [RunStatus.SUCCEEDED] * 3
    assert invoices(rt) == 3
    assert jobs.sweep(rt) == []


def test_a_queued_run_still_waiting_in_redis_is_not_enqueued_twice(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    overdue(rt, run_id)

    assert jobs.sweep(rt) == []

    assert rt.queue.count == 1
    with rt.sessions() as s:
        assert s.get_one(Run, run_id).deadline_at > utcnow()  # checked again later, not now


def test_a_run_left_running_by_a_dead_worker_is_run_again_without_a_second_invoice(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    rt.redis.flushdb()
    with rt.sessions.begin() as s:  # what a worker killed mid-step leaves behind
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=RunStatus.RUNNING, attempts=1, deadline_at=utcnow() - timedelta(seconds=1)
            )
        )

    assert jobs.sweep(rt) == [run_id]
    drain(rt)

    assert statuses(rt) == [RunStatus.SUCCEEDED]
    assert invoices(rt) == 1


def test_a_delivery_is_accepted_and_kept_while_redis_is_down(settings, rt):
    down = build_runtime(settings.with_(redis_url="redis://127.0.0.1:1/0"))
    try:
        hook = make_hook(down)
        response = post_deal(create_app(runtime=down).test_client(), hook, deal())
    finally:
        down.close()

    assert response.status_code == 202  # committed in the database: the sender may move on
    [run_id] = response.json["run_ids"]
    overdue(rt, run_id)
    assert jobs.sweep(rt) == [run_id]
    drain(rt)
    assert statuses(rt) == [RunStatus.SUCCEEDED]
