"""When the queue is long, one job runs several queued runs: RQ's cost per job is paid once
for them, and nothing is lost or run twice."""

from __future__ import annotations

from rq import SimpleWorker
from sqlalchemy import func, select

from connector import jobs
from connector.models import Run, RunAttempt, RunStatus
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
