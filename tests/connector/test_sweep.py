"""Nothing is lost: the database is the truth, and the sweeper re-enqueues what Redis lost."""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job
from sqlalchemy import func, select, update

from connector import jobs, replay
from connector.models import Run, RunStatus
from connector.runtime import build_runtime
from database import utcnow
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


def running(rt, run_id: int, *, attempts: int = 1, overdue_by: float = -60) -> None:
    """The run as a worker's claim leaves it: running, with a deadline (`overdue_by` < 0: in
    the future)."""
    with rt.sessions.begin() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status=RunStatus.RUNNING,
                attempts=attempts,
                deadline_at=utcnow() - timedelta(seconds=overdue_by),
            )
        )


def test_a_running_run_is_swept_before_its_deadline_only_once_its_job_has_ended(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    running(rt, run_id)

    assert jobs.sweep(rt) == []  # its job is alive
    rt.redis.flushdb()
    assert jobs.sweep(rt) == []  # its job is gone, but a worker may still be on the run

    jobs.enqueue_runs(rt, [run_id])
    drain(rt)  # the job ends without running it: the run is not queued
    assert Job.fetch(jobs.job_id(run_id), connection=rt.redis).get_status() == "finished"
    assert statuses(rt) == [RunStatus.RUNNING]

    assert jobs.sweep(rt) == [run_id]  # nobody is on it: no waiting for its deadline
    drain(rt)

    assert statuses(rt) == [RunStatus.SUCCEEDED]
    assert invoices(rt) == 1
    assert jobs.sweep(rt) == []


def test_a_run_lost_in_its_last_attempt_goes_to_the_dead_letter_list(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    rt.redis.flushdb()
    last = max(action.max_attempts for action in rt.registry.actions.values())
    running(rt, run_id, attempts=last, overdue_by=1)

    assert jobs.sweep(rt) == [run_id]

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.DEAD
        assert run.error["message"] == jobs.GAVE_UP
        assert run.finished_at is not None
    assert rt.queue.count == 0  # not queued again
    assert jobs.sweep(rt) == []

    with rt.sessions.begin() as s:  # an admin replays it: a fresh budget
        replay.replay(s, rt.registry, run_id)
    jobs.enqueue_runs(rt, [run_id])
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


def test_a_queued_run_whose_job_was_lost_gets_the_attempt_it_was_waiting_for(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    rt.redis.flushdb()  # its retry job is gone
    with rt.sessions.begin() as s:  # between two attempts: queued, its budget nearly spent
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(attempts=5, deadline_at=utcnow() - timedelta(seconds=1))
        )

    assert jobs.sweep(rt) == [run_id]

    assert statuses(rt) == [RunStatus.QUEUED]
    drain(rt)
    assert statuses(rt) == [RunStatus.SUCCEEDED]


def test_a_second_job_for_a_running_run_does_not_take_its_place(rt, client):
    payload = deal()
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    running(rt, run_id)  # a worker is on it, and holds the deal
    with rt.sessions() as s:  # the deal as the hook it arrived on knows it
        entity = s.get_one(Run, run_id).entity_key
    assert entity == f"webhook@subscription:{hook.subscription_id}:{payload['deal_id']}"
    busy = rt.redis.lock(f"{jobs.ENTITY_LOCK_PREFIX}{entity}", timeout=30)
    assert busy.acquire(blocking=False)

    assert jobs.execute_run(run_id) == "deferred"  # a duplicate job, as a race can leave

    with rt.sessions() as s:
        assert s.get_one(Run, run_id).job_id is None  # still the running job's
    busy.release()
