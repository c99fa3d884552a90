"""When the queue is long, one job runs several queued runs: RQ's cost per job is paid once
for them, and nothing is lost or run twice."""

from __future__ import annotations

import sqlalchemy as sa
from rq import SimpleWorker
from sqlalchemy import func, select

from connector import jobs, runner
from connector.models import Run, RunAttempt, RunKey, RunStatus, RunStep
from database import utcnow
from invoicing.models import Invoice
from tests.conftest import drain
from tests.connector.test_sweep import overdue
from tests.factories import deal, make_hook, post_deal


def queue_runs(rt, client, n: int) -> list[int]:
    hook = make_hook(rt)
    return [post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(n)]


def succeeded(rt) -> list[int]:
    with rt.sessions() as s:
        return list(s.scalars(select(Run.id).where(Run.status == RunStatus.SUCCEEDED)))


def test_one_job_on_a_long_queue_runs_the_runs_behind_it_and_leaves_other_jobs_in_place(rt, client):
    first = queue_runs(rt, client, 3)
    other = rt.queue.enqueue("os.getpid")  # not a run: it keeps its place
    rest = queue_runs(rt, client, 9)

    SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)

    done = succeeded(rt)
    assert len(done) > 1  # the job ran more than its own run
    assert rt.queue.get_job_ids()[0] == other.id
    assert len(done) + rt.queue.count == len(first + rest) + 1  # nothing lost on the way
    drain(rt)
    with rt.sessions() as s:
        assert sorted(succeeded(rt)) == sorted(first + rest)
        assert s.scalar(select(func.count()).select_from(RunAttempt)) == 12  # each ran once
        assert s.scalar(select(func.count()).select_from(Invoice)) == 12
    assert jobs.sweep(rt) == []


def test_a_short_queue_is_left_to_the_other_workers(rt, client):
    queue_runs(rt, client, jobs.ALONG_AFTER - 1)

    SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)

    assert len(succeeded(rt)) == 1


def test_runs_taken_off_the_queue_by_a_worker_that_died_are_queued_again_by_the_sweeper(rt, client):
    ids = queue_runs(rt, client, 6)
    taken = jobs._take_runs(rt, 4)  # and then its worker died
    assert [run_id for run_id, _ in taken] == ids[:4]
    assert rt.queue.count == 2

    overdue(rt, *ids[:4])
    assert jobs.sweep(rt) == ids[:4]
    drain(rt)

    assert sorted(succeeded(rt)) == ids


def test_runs_taken_along_are_claimed_together_under_the_job_that_carries_them(
    rt, client, monkeypatch
):
    ids = queue_runs(rt, client, jobs.ALONG_AFTER + jobs.ALONG_BATCH)
    claims: list[list[int]] = []

    def claim_runs(sessions, run_ids, *args, **kwargs):
        claims.append(sorted(run_ids))
        return real(sessions, run_ids, *args, **kwargs)

    real = runner.claim_runs
    monkeypatch.setattr(runner, "claim_runs", claim_runs)
    SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)

    # its own run, then the next ALONG_BATCH in one claim (the queue was short after that)
    assert claims == [ids[:1], ids[1 : 1 + jobs.ALONG_BATCH]]
    assert sorted(succeeded(rt)) == ids[: 1 + jobs.ALONG_BATCH]
    with rt.sessions() as s:
        attempts = s.execute(select(RunAttempt.run_id, RunAttempt.status)).all()
        assert sorted(attempts) == [(i, "succeeded") for i in ids[: 1 + jobs.ALONG_BATCH]]


def test_runs_claimed_by_a_job_that_ended_before_running_them_are_taken_back_at_once(rt, client):
    carrier = rt.queue.enqueue("os.getpid")
    ids = queue_runs(rt, client, 3)
    SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)  # ends it
    rt.redis.delete(rt.queue.key)  # the runs' own jobs: deleted, as taking along does

    claims = runner.claim_runs(rt.sessions, ids, utcnow(), 300, job=carrier.id)
    assert sorted(claims) == ids  # and then the job ended (its worker lost the database)
    with rt.sessions() as s:
        rows = s.execute(select(Run.status, Run.job_id).where(Run.id.in_(ids))).all()
        assert rows == [(RunStatus.RUNNING, carrier.id)] * 3

    assert jobs.sweep(rt) == ids  # their deadline is minutes away: no need to wait for it
    drain(rt)

    assert sorted(succeeded(rt)) == ids
    with rt.sessions() as s:
        history = s.execute(
            select(RunAttempt.run_id, RunAttempt.status).order_by(RunAttempt.id)
        ).all()
        assert sorted(history) == sorted(
            [(i, "lost") for i in ids] + [(i, "succeeded") for i in ids]
        )
        assert s.scalar(select(func.count()).select_from(Invoice)) == 3


def test_runs_taken_along_whose_steps_stay_in_our_database_commit_in_one_transaction(rt, client):
    ids = queue_runs(rt, client, jobs.ALONG_AFTER + jobs.ALONG_BATCH)
    seen: list[int] = []

    def commit(_conn) -> None:
        seen.append(1)

    sa.event.listen(rt.engine, "commit", commit)
    try:
        SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)
    finally:
        sa.event.remove(rt.engine, "commit", commit)

    # its own run: claim, steps; then ALONG_BATCH runs: one claim, one transaction for all
    assert len(seen) == 4
    ran = ids[: 1 + jobs.ALONG_BATCH]
    assert sorted(succeeded(rt)) == ran
    with rt.sessions() as s:  # each run as complete as if it had run alone
        steps = s.execute(select(RunStep.run_id, RunStep.step_id, RunStep.status)).all()
        assert sorted(steps) == sorted(
            (i, step, "succeeded") for i in ran for step in ("deal", "invoice")
        )
        attempts = s.execute(select(RunAttempt.run_id, RunAttempt.status)).all()
        assert sorted(attempts) == [(i, "succeeded") for i in ran]
        keyed = s.scalars(select(RunKey.run_id).where(RunKey.name == "invoice_ref")).all()
        assert sorted(keyed) == ran
        assert s.scalar(select(func.count()).select_from(Invoice)) == len(ran)


def test_a_run_failing_among_runs_run_together_sends_them_back_to_run_each_alone(rt, client):
    hook = make_hook(rt)
    ids = [post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(jobs.ALONG_AFTER)]
    bad_deal = deal(customer={**deal()["customer"], "tax_id": "B12345670"})  # wrong check digit
    bad = post_deal(client, hook, bad_deal).json["run_ids"][0]
    ids += [bad] + [post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(3)]

    SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, max_jobs=1)
    drain(rt)

    assert sorted(succeeded(rt)) == sorted(set(ids) - {bad})
    with rt.sessions() as s:
        assert s.get(Run, bad).status == RunStatus.FAILED
        steps = dict(
            s.execute(select(RunStep.step_id, RunStep.status).where(RunStep.run_id == bad)).all()
        )
        assert steps == {"deal": "succeeded", "invoice": "failed"}  # as when it runs alone
        assert s.scalar(select(func.count()).select_from(RunAttempt)) == len(ids)  # once each
        assert s.scalar(select(func.count()).select_from(Invoice)) == len(ids) - 1


def test_deal_locks_are_taken_together_and_only_their_own_token_releases_them(rt):
    prefix = jobs.ENTITY_LOCK_PREFIX
    assert jobs._lock_deals(rt, [(1, "t:a"), (2, None), (3, "t:b")], "mine") == {
        1: prefix + "t:a",
        3: prefix + "t:b",
    }
    assert 0 < rt.redis.pttl(prefix + "t:a") <= (300 + runner.CLAIM_GRACE - 1) * 1000
    # held: another run of the deal must wait its turn
    assert jobs._lock_deals(rt, [(4, "t:a"), (5, "t:c")], "theirs") == {5: prefix + "t:c"}

    # releasing ours leaves theirs (a lock of ours that expired may be another run's now)
    jobs._unlock_deals(rt, [prefix + "t:a", prefix + "t:c"], "mine")
    assert not rt.redis.exists(prefix + "t:a")
    assert rt.redis.get(prefix + "t:c") == b"theirs"
