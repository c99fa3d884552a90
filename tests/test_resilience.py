"""Exactly one invoice per won deal when things break: a worker SIGKILLed mid-step, Redis
flushed with runs queued, PostgreSQL connections cut mid-flight and a PostgreSQL server really
restarted (one of the test's own), a hundred concurrent deliveries.

The database is the truth: whatever dies, the sweeper (or a retry) finishes every run once.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy import func, select, update
from sqlalchemy.pool import NullPool

from connector import jobs, migrate, runner
from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from connector.settings import Settings
from database import utcnow
from invoicing.models import Customer, Deal, Invoice
from tests.conftest import BACKENDS, POSTGRES_URL, drain
from tests.factories import deal, make_hook, post_deal, signed
from tests.private_postgres import PostgresBinariesMissing, PrivatePostgres
from tests.processes import kill_worker, start_rq_worker, wait_for

pytestmark = pytest.mark.timeout(60)

POSTGRESQL_ONLY = [b for b in BACKENDS if b == "postgresql"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings; on PostgreSQL every session of the test carries an application_name
    of its own, so a test cuts or watches only its own connections on a shared server."""
    if not is_postgres(settings):
        return settings
    name = f"puente-resilience-{uuid.uuid4().hex[:12]}"
    return settings.with_(database_url=f"{settings.database_url}&application_name={name}")


def is_postgres(settings: Settings) -> bool:
    return settings.database_url.startswith("postgresql")


def app_name(settings: Settings) -> str:
    return str(sa.make_url(settings.database_url).query["application_name"])


def count(rt: Runtime, model: type, *where: Any) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def invoices_per_deal(rt: Runtime) -> Counter[str]:
    with rt.sessions() as s:
        return Counter(s.scalars(select(Invoice.external_ref)))


def statuses(rt: Runtime, run_ids: list[int]) -> dict[int, str]:
    with rt.sessions() as s:
        return dict(s.execute(select(Run.id, Run.status).where(Run.id.in_(run_ids))).all())


def overdue(rt: Runtime, *run_ids: int) -> None:
    """Move the runs' deadlines into the past, as if the time they were given had run out."""
    with rt.sessions.begin() as s:
        s.execute(
            update(Run)
            .where(Run.id.in_(run_ids))
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )


def invoice_outputs(rt: Runtime, run_ids: list[int]) -> list[dict[str, Any]]:
    with rt.sessions() as s:
        runs = s.scalars(select(Run).where(Run.id.in_(run_ids)).order_by(Run.id))
        return [next(st.output for st in run.steps if st.step_id == "invoice") for run in runs]


def assert_recovered(
    rt: Runtime,
    run_id: int,
    payload: dict[str, Any],
    history: list[tuple[int, str]],
    invoice_attempts: int,
) -> None:
    """The run succeeded after `history`, its deal step performed once and its draft step
    `invoice_attempts` times, making the deal's one invoice; one customer, one deal record."""
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert [(a.attempt, a.status) for a in run.attempts_log] == history
        steps = {st.step_id: st for st in run.steps}
        assert (steps["deal"].status, steps["deal"].attempts) == ("succeeded", 1)
        assert (steps["invoice"].status, steps["invoice"].attempts) == (
            "succeeded",
            invoice_attempts,
        )
        assert steps["invoice"].output["created"] is True
    assert invoices_per_deal(rt)[payload["deal_id"]] == 1
    assert count(rt, Customer) == 1
    assert count(rt, Deal, Deal.external_ref == payload["deal_id"]) == 1


def many_lines(payload: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """`n` lines made from the sample's: a big deal, slower to map and validate."""
    lines = payload["lines"]
    return [
        dict(lines[i % len(lines)], description=f"{lines[i % len(lines)]['description']} #{i}")
        for i in range(n)
    ]


# --- 1. A worker SIGKILLed mid-step --------------------------------------------------------


def sqlite_run_state(conn: sqlite3.Connection, run_id: int) -> tuple[str, dict[str, str]]:
    status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    steps = conn.execute("SELECT step_id, status FROM run_steps WHERE run_id = ?", (run_id,))
    return status, dict(steps.fetchall())


def kill_inside_the_steps_transaction(
    path: str, run_id: int, worker: Any, timeout: float = 20
) -> bool:
    """SIGKILL the worker while it is inside the transaction of the run's steps.

    The claim is committed on its own (`running`); the steps and the finish then share one
    transaction, which holds SQLite's write lock from its BEGIN IMMEDIATE to its commit. So
    when the run reads `running` and the write lock is taken (BEGIN IMMEDIATE fails at once
    here), the worker is between its steps' first statement and their commit. Returns False
    when the run finished before that was seen (the kill then comes too late to matter).
    """
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):  # busy reading: look again
                status, _ = sqlite_run_state(conn, run_id)
                if status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                    return False
                if status == RunStatus.RUNNING:
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError:  # the worker holds the lock: now
                        kill_worker(worker)
                        return True
                    conn.execute("ROLLBACK")  # between claim and steps: look again
            time.sleep(0.0005)
    finally:
        conn.close()
    raise AssertionError(f"run {run_id} never reached its steps within {timeout} s")


def postgres_waiters(rt: Runtime, table: str, application: str) -> list[int]:
    """Backends of this test waiting for a lock on `table`."""
    with rt.sessions() as s:
        return list(
            s.scalars(
                sa.text(
                    "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND l.relation = CAST(:table AS regclass) "
                    "AND a.application_name = :app"
                ),
                {"table": table, "app": application},
            )
        )


def postgres_backend_exists(rt: Runtime, pid: int) -> bool:
    with rt.sessions() as s:
        found = s.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        return bool(found)


def test_a_worker_killed_mid_step_is_swept_and_the_deal_billed_once(settings, rt, client, tmp_path):
    hook = make_hook(rt)
    worker = start_rq_worker(settings, tmp_path / "worker.log", f"resilience-{uuid.uuid4().hex}")
    missed: list[str] = []  # SQLite only: deals whose run got past the draft step first
    holder: Any = None
    lock_engine = None
    orphan: int | None = None
    try:
        if is_postgres(settings):
            # The draft step reads customers first: it blocks inside its open transaction.
            lock_engine = sa.create_engine(settings.database_url, poolclass=NullPool)
            holder = lock_engine.connect()
            holder.exec_driver_sql("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            payload = deal()
            [run_id] = post_deal(client, hook, payload).json["run_ids"]
            [orphan] = wait_for(
                lambda: postgres_waiters(rt, "customers", app_name(settings)),
                20,
                "the worker to wait for the customers table in its draft step",
            )
            with rt.sessions() as s:  # its steps share one open transaction: none shows yet
                run = s.get_one(Run, run_id)
                assert run.status == RunStatus.RUNNING
                assert run.steps == []
        else:
            path = sa.make_url(settings.database_url).database
            for _ in range(3):
                payload = deal()
                payload["lines"] = many_lines(payload, 200)  # a longer transaction to hit
                [run_id] = post_deal(client, hook, payload).json["run_ids"]
                if kill_inside_the_steps_transaction(path, run_id, worker):
                    assert worker.wait(timeout=10) == -9
                    if statuses(rt, [run_id])[run_id] == RunStatus.RUNNING:
                        break  # killed before its commit
                    worker = start_rq_worker(  # the commit won the race: again
                        settings, tmp_path / "worker.log", f"resilience-{uuid.uuid4().hex}"
                    )
                missed.append(payload["deal_id"])
                wait_for(
                    lambda rid=run_id: statuses(rt, [rid])[rid] == RunStatus.SUCCEEDED,
                    20,
                    "the missed run to finish",
                )
            else:
                raise AssertionError("the worker got through every run before the kill")
        if worker.poll() is None:
            kill_worker(worker)  # the job runs in the worker process itself (no fork per job)
        assert worker.wait(timeout=10) == -9, "the worker was killed mid-step"
    except AssertionError as exc:
        log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}\n--- worker log ---\n{log}") from exc
    finally:
        if worker.poll() is None:
            kill_worker(worker)
        if holder is not None:
            holder.close()  # rolls back: the lock holder wrote nothing
        if lock_engine is not None:
            lock_engine.dispose()
    if orphan is not None:
        # The killed worker's session, granted the lock now, finds its client gone and rolls back.
        wait_for(lambda: not postgres_backend_exists(rt, orphan), 10, "the orphan session to end")

    with rt.sessions() as s:  # what the kill left: a claimed run, nothing of its steps
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.RUNNING
        assert [(a.attempt, a.status, a.finished_at) for a in run.attempts_log] == [
            (1, "running", None)
        ]
        assert run.steps == []
        entity, deadline = run.entity_key, run.deadline_at
    assert invoices_per_deal(rt)[payload["deal_id"]] == 0
    assert count(rt, Deal, Deal.external_ref == payload["deal_id"]) == 0
    assert jobs.sweep(rt) == []  # before its deadline a running run is left alone

    # The dead worker still holds the deal's lock, which expires by the run's deadline: when
    # the deadline has passed, so has the lock. Let that time pass.
    lock_key = jobs.ENTITY_LOCK_PREFIX + entity
    ttl_ms = rt.redis.pttl(lock_key)
    assert ttl_ms > 0
    assert utcnow() + timedelta(milliseconds=ttl_ms) <= deadline
    rt.redis.delete(lock_key)
    overdue(rt, run_id)

    assert jobs.sweep(rt) == [run_id]
    drain(rt)

    # Each step's effect and row were committed once, by the second attempt.
    assert_recovered(rt, run_id, payload, [(1, "lost"), (2, RunStatus.SUCCEEDED)], 1)
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.attempts == 2
        assert run.attempts_log[0].error["message"] == jobs.UNFINISHED
        invoice_id = next(st.output["invoice_id"] for st in run.steps if st.step_id == "invoice")
        assert run.key("invoice_ref") == str(invoice_id)
    assert sum(invoices_per_deal(rt).values()) == 1 + len(missed)
    assert jobs.sweep(rt) == []


# --- 2. Redis flushed with runs queued -----------------------------------------------------


def test_twenty_runs_queued_when_redis_is_flushed_run_once_each(rt, client):
    hook = make_hook(rt)
    payloads = [deal() for _ in range(20)]
    answers = [post_deal(client, hook, p) for p in payloads]
    assert [a.status_code for a in answers] == [202] * 20
    run_ids = [rid for a in answers for rid in a.json["run_ids"]]
    assert len(set(run_ids)) == 20
    assert rt.queue.count == 20

    rt.redis.flushdb()  # Redis restarted without persistence: every job is gone
    drain(rt)  # a worker finds nothing to do
    assert set(statuses(rt, run_ids).values()) == {RunStatus.QUEUED}
    assert jobs.sweep(rt) == []  # not overdue yet

    overdue(rt, *run_ids)
    assert jobs.sweep(rt) == sorted(run_ids)
    assert jobs.sweep(rt) == []  # swept runs are queued again with a fresh deadline
    drain(rt)

    assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    assert invoices_per_deal(rt) == Counter({p["deal_id"]: 1 for p in payloads})
    assert count(rt, Event) == 20
    assert count(rt, Run) == 20
    with rt.sessions() as s:
        per_event = Counter(s.scalars(select(Run.event_id)))
        assert set(per_event.values()) == {1}
        runs = s.scalars(select(Run).where(Run.id.in_(run_ids)))
        assert {tuple((a.attempt, a.status) for a in r.attempts_log) for r in runs} == {
            ((1, RunStatus.SUCCEEDED),)
        }
    # A deal sent again after all that (a new delivery id: a new event and run) is not billed
    # again.
    again = post_deal(client, hook, payloads[0])
    assert again.status_code == 202
    drain(rt)
    [again_run] = again.json["run_ids"]
    assert statuses(rt, [again_run]) == {again_run: RunStatus.SUCCEEDED}
    assert invoice_outputs(rt, [again_run])[0]["created"] is False
    assert invoices_per_deal(rt) == Counter({p["deal_id"]: 1 for p in payloads})
    assert jobs.sweep(rt) == []


# --- 3. PostgreSQL restarted mid-flight ----------------------------------------------------


def cut_connections(settings: Settings, first: list[int] | None = None) -> int:
    """What a PostgreSQL restart does to this test's sessions: every one is terminated.

    The sessions in `first` go first (each termination waits for the backend to exit), so a
    session waiting for a lock dies before the one holding it could let it through.
    """
    admin = sa.create_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            pids = list(
                conn.scalars(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND application_name = :app"
                    ),
                    {"app": app_name(settings)},
                )
            )
            ordered = [p for p in first or [] if p in pids] + [
                p for p in pids if p not in (first or [])
            ]
            terminate = sa.text("SELECT pg_terminate_backend(:pid, 5000)")
            return sum(bool(conn.scalar(terminate, {"pid": pid})) for pid in ordered)
    finally:
        admin.dispose()


def finish_retries(rt: Runtime, run_ids: list[int]) -> int:
    """Run again what a transient failure put back in the queue, as the scheduled retry does."""
    retried = 0
    for _ in range(runner.MAX_ATTEMPTS):
        with rt.sessions() as s:
            pending = list(
                s.scalars(select(Run.id).where(Run.id.in_(run_ids), Run.status == RunStatus.QUEUED))
            )
        if not pending:
            break
        for run_id in pending:
            runner.execute_run(rt.sessions, rt.registry, run_id, tools=rt.tools)
            retried += 1
    return retried


@pytest.mark.parametrize("database_url", POSTGRESQL_ONLY, indirect=True)
def test_postgresql_connections_cut_between_delivery_and_execution(settings, rt, client):
    hook = make_hook(rt)
    payloads = [deal() for _ in range(6)]
    answers = [post_deal(client, hook, p) for p in payloads[:3]]
    assert cut_connections(settings) >= 1  # the pooled connection the deliveries used dies
    answers += [post_deal(client, hook, p) for p in payloads[3:]]  # intake reconnects
    assert [a.status_code for a in answers] == [202] * 6
    run_ids = [rid for a in answers for rid in a.json["run_ids"]]

    assert cut_connections(settings) >= 1  # and again before the worker starts
    drain(rt)

    # pool_pre_ping replaces a dead pooled connection at checkout: no attempt is lost, and no
    # run is left queued for a retry (there would be one to run here otherwise).
    assert finish_retries(rt, run_ids) == 0
    assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    with rt.sessions() as s:
        runs = s.scalars(select(Run).where(Run.id.in_(run_ids)))
        assert {tuple((a.attempt, a.status) for a in r.attempts_log) for r in runs} == {
            ((1, RunStatus.SUCCEEDED),)
        }
    assert invoices_per_deal(rt) == Counter({p["deal_id"]: 1 for p in payloads})
    assert count(rt, Customer) == 1


@pytest.mark.parametrize("database_url", POSTGRESQL_ONLY, indirect=True)
def test_postgresql_connections_cut_while_a_run_is_in_its_draft_step(settings, rt, client):
    hook = make_hook(rt)
    payload = deal()
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    lock_engine = sa.create_engine(settings.database_url, poolclass=NullPool)
    holder = lock_engine.connect()
    try:
        holder.exec_driver_sql("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(
                runner.execute_run, rt.sessions, rt.registry, run_id, tools=rt.tools
            )
            waiting = wait_for(
                lambda: postgres_waiters(rt, "customers", app_name(settings)),
                20,
                "the run to wait for the customers table in its draft step",
            )
            # The waiting session, the lock holder and the pool's idle connections all die.
            assert cut_connections(settings, first=waiting) >= 2
            first = running.result(timeout=30)
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):
            holder.close()
        lock_engine.dispose()

    assert first.status == "retry"  # a lost connection is transient
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.QUEUED
        assert run.error["class"] == "transient"
        assert [(a.attempt, a.status) for a in run.attempts_log] == [(1, "retry")]
        # The deal and draft steps share a transaction, which died: nothing of it stayed, and
        # the step it died in is logged as failed, with the lost connection as its error.
        [step] = run.steps
        assert (step.step_id, step.status, step.error["class"]) == (
            "invoice",
            "failed",
            "transient",
        )
    assert invoices_per_deal(rt)[payload["deal_id"]] == 0
    assert count(rt, Deal) == 0

    second = runner.execute_run(
        rt.sessions, rt.registry, run_id, tools=rt.tools
    )  # the scheduled retry

    assert second.status == "succeeded"
    assert_recovered(rt, run_id, payload, [(1, "retry"), (2, RunStatus.SUCCEEDED)], 2)
    assert invoices_per_deal(rt) == Counter({payload["deal_id"]: 1})


# --- 3'. PostgreSQL really restarted: a private server ---------------------------------------
#
# The simulations above cut this test's sessions on the shared server. Here a server of the
# module's own (tests/private_postgres.py) is stopped and started for real: every session dies,
# the port refuses connections while it is down, and the pool must find that out by itself.


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        with PrivatePostgres.running() as server:
            yield server
    except PostgresBinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def private_template(private_postgres: PrivatePostgres) -> str:
    """A migrated database on the private server, copied for each test."""
    name = private_postgres.create_database()
    migrate.upgrade(private_postgres.url(name))
    return name


def postmaster_started(rt: Runtime) -> datetime:
    with rt.sessions() as s:
        started: datetime = s.scalar(sa.text("SELECT pg_postmaster_start_time()"))
        return started


def attempt_histories(rt: Runtime, run_ids: list[int]) -> dict[int, tuple[tuple[int, str], ...]]:
    with rt.sessions() as s:
        runs = s.scalars(select(Run).where(Run.id.in_(run_ids)))
        return {r.id: tuple((a.attempt, a.status) for a in r.attempts_log) for r in runs}


def assert_each_billed_once(
    rt: Runtime, run_ids: list[int], payloads: list[dict[str, Any]]
) -> None:
    """Every run succeeded at its first attempt (none left to retry), one event and one run
    per delivery, one invoice per deal, one customer, nothing left for the sweeper."""
    assert finish_retries(rt, run_ids) == 0
    assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    assert attempt_histories(rt, run_ids) == dict.fromkeys(run_ids, ((1, RunStatus.SUCCEEDED),))
    assert (count(rt, Event), count(rt, Run)) == (len(payloads), len(payloads))
    assert invoices_per_deal(rt) == Counter({p["deal_id"]: 1 for p in payloads})
    assert count(rt, Customer) == 1
    assert jobs.sweep(rt) == []


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL is not a test database")
class TestPostgresqlRestarted:
    @pytest.fixture
    def database_url(
        self, private_postgres: PrivatePostgres, private_template: str
    ) -> Iterator[str]:
        """A fresh database on the private server; the server left running for the next test."""
        yield private_postgres.url(private_postgres.create_database(template=private_template))
        if not private_postgres.is_running():
            private_postgres.start()

    def test_runs_delivered_around_restarts_run_once_each(self, private_postgres, rt, client):
        hook = make_hook(rt)
        payloads = [deal() for _ in range(6)]
        answers = [post_deal(client, hook, p) for p in payloads[:3]]
        before = postmaster_started(rt)

        private_postgres.restart()  # the pooled connection the deliveries used dies with it
        answers += [post_deal(client, hook, p) for p in payloads[3:]]  # the pool reconnects
        after = postmaster_started(rt)
        private_postgres.restart()  # and again before the worker starts

        assert after > before  # a new server answered
        assert [a.status_code for a in answers] == [202] * 6
        run_ids = [rid for a in answers for rid in a.json["run_ids"]]
        drain(rt)

        # The pool replaces dead connections at checkout: no attempt fails, none is retried.
        assert_each_billed_once(rt, run_ids, payloads)

    def test_deliveries_while_the_server_is_down_get_a_503_and_are_billed_once_when_resent(
        self, private_postgres, rt, client
    ):
        hook = make_hook(rt)
        payloads = [deal() for _ in range(3)]
        deliveries = [(json.dumps(p).encode(), f"msg_{uuid.uuid4().hex}") for p in payloads]

        def send(delivery: tuple[bytes, str]) -> Any:  # signed again on each try, same id
            body, msg_id = delivery
            return client.post(hook.path, data=body, headers=signed(hook.secret, body, msg_id))

        first = send(deliveries[0])
        assert first.status_code == 202
        private_postgres.stop()
        down = [send(d) for d in deliveries]  # the first one again, and two new ones
        private_postgres.start()

        assert [a.status_code for a in down] == [503] * 3
        assert {a.headers.get("Retry-After") for a in down} == {"5"}
        assert {a.json["error"] for a in down} == {"database_unavailable"}
        assert (count(rt, Event), count(rt, Run)) == (1, 1)

        again = [send(d) for d in deliveries]  # the sender's retries, once the server is back
        assert [a.status_code for a in again] == [200, 202, 202]
        assert again[0].json == {**first.json, "duplicate": True}
        run_ids = [rid for a in again for rid in a.json["run_ids"]]
        drain(rt)

        assert_each_billed_once(rt, run_ids, payloads)

    def test_jobs_run_while_the_server_is_down_are_swept_once_it_is_back(
        self, private_postgres, rt, client
    ):
        hook = make_hook(rt)
        payloads = [deal() for _ in range(4)]
        answers = [post_deal(client, hook, p) for p in payloads]
        assert [a.status_code for a in answers] == [202] * 4
        run_ids = [rid for a in answers for rid in a.json["run_ids"]]

        private_postgres.stop()
        drain(rt)  # every job fails: the database refuses the worker
        private_postgres.start()

        failed = rt.queue.failed_job_registry
        assert sorted(failed.get_job_ids()) == sorted(jobs.job_id(r) for r in run_ids)
        assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.QUEUED)  # not claimed
        assert attempt_histories(rt, run_ids) == dict.fromkeys(run_ids, ())
        assert jobs.sweep(rt) == []  # before their deadline, queued runs are left alone

        overdue(rt, *run_ids)
        assert jobs.sweep(rt) == sorted(run_ids)  # their jobs failed: lost, queued again
        assert failed.get_job_ids() == []  # the same job ids are queued: no stale failures
        drain(rt)

        assert_each_billed_once(rt, run_ids, payloads)

    def test_a_run_in_its_draft_step_when_the_server_stops_is_swept_and_billed_once(
        self, private_postgres, settings, rt, client
    ):
        """Stopped, then started: a restart split in two, so the run's reaction to the lost
        connection is seen with the server still down (with `pg_ctl restart` the server may
        or may not be back by the time the run writes its failure)."""
        hook = make_hook(rt)
        payload = deal()
        [run_id] = post_deal(client, hook, payload).json["run_ids"]
        lock_engine = sa.create_engine(settings.database_url, poolclass=NullPool)
        holder = lock_engine.connect()
        try:
            # The draft step reads customers first: it blocks inside its open transaction.
            holder.exec_driver_sql("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(max_workers=1) as pool:
                # The RQ job's function, as a worker calls it: deal lock, then the run.
                running = pool.submit(jobs.execute_run, run_id)
                wait_for(
                    lambda: postgres_waiters(rt, "customers", app_name(settings)),
                    20,
                    "the run to wait for the customers table in its draft step",
                )
                with rt.sessions() as s:
                    entity = s.get_one(Run, run_id).entity_key
                assert entity is not None
                assert rt.redis.exists(jobs.ENTITY_LOCK_PREFIX + entity)

                private_postgres.stop()  # every session dies, the lock holder's too
                # Nowhere to record the failure: the job fails (RQ keeps it as failed).
                with pytest.raises(sa.exc.OperationalError):
                    running.result(timeout=30)
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):
                holder.close()
            lock_engine.dispose()
        assert not rt.redis.exists(jobs.ENTITY_LOCK_PREFIX + entity)  # released on the way out
        private_postgres.start()

        with rt.sessions() as s:  # what the stop left: a claimed run, no draft
            run = s.get_one(Run, run_id)
            assert run.status == RunStatus.RUNNING
            assert [(a.attempt, a.status, a.finished_at) for a in run.attempts_log] == [
                (1, "running", None)
            ]
            # The steps' transaction died with the server and its failure could not be
            # written: no trace of them but the open attempt.
            assert run.steps == []
        assert invoices_per_deal(rt)[payload["deal_id"]] == 0
        assert jobs.sweep(rt) == []  # before its deadline a running run is left alone

        overdue(rt, run_id)
        assert jobs.sweep(rt) == [run_id]
        drain(rt)

        assert_recovered(rt, run_id, payload, [(1, "lost"), (2, RunStatus.SUCCEEDED)], 1)
        assert invoices_per_deal(rt) == Counter({payload["deal_id"]: 1})
        assert jobs.sweep(rt) == []

    def test_a_run_whose_worker_lost_the_server_is_swept_once_it_is_back_not_at_its_deadline(
        self, private_postgres, settings, rt, client
    ):
        """The same stop, with a real RQ worker: its job fails, and that is enough for the
        sweeper to know nobody is on the run any more (no waiting for the run's deadline)."""
        hook = make_hook(rt)
        payload = deal()
        [run_id] = post_deal(client, hook, payload).json["run_ids"]
        lock_engine = sa.create_engine(settings.database_url, poolclass=NullPool)
        holder = lock_engine.connect()

        def stop_once_the_run_waits() -> None:
            wait_for(
                lambda: postgres_waiters(rt, "customers", app_name(settings)),
                20,
                "the run to wait for the customers table in its draft step",
            )
            private_postgres.stop()

        try:
            holder.exec_driver_sql("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(max_workers=1) as pool:
                stopping = pool.submit(stop_once_the_run_waits)
                drain(rt)  # the worker in this thread (RQ's signal handlers need it)
                stopping.result(timeout=30)
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):
                holder.close()
            lock_engine.dispose()
        private_postgres.start()

        assert rt.queue.failed_job_registry.get_job_ids() == [jobs.job_id(run_id)]
        with rt.sessions() as s:
            run = s.get_one(Run, run_id)
            assert run.status == RunStatus.RUNNING
            assert run.deadline_at is not None and run.deadline_at > utcnow()  # not overdue

        assert jobs.sweep(rt) == [run_id]  # its job failed: nobody is on it
        assert rt.queue.failed_job_registry.get_job_ids() == []
        drain(rt)

        assert_recovered(rt, run_id, payload, [(1, "lost"), (2, RunStatus.SUCCEEDED)], 1)
        assert jobs.sweep(rt) == []


# --- 4. Concurrent deliveries of the same deal ---------------------------------------------


def post_all(url: str, requests_: list[tuple[bytes, dict[str, str]]]) -> list[requests.Response]:
    """POST every (body, headers) at once from 16 threads; each request and the lot bounded."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(
            pool.map(
                lambda r: requests.post(url, data=r[0], headers=r[1], timeout=30),
                requests_,
                timeout=45,
            )
        )


def test_a_hundred_concurrent_deliveries_of_one_webhook_make_one_invoice(rt, live_server):
    hook = make_hook(rt)
    payload = deal()
    body = json.dumps(payload).encode()
    headers = signed(hook.secret, body, msg_id=f"msg_{uuid.uuid4().hex}")

    answers = post_all(live_server + hook.path, [(body, headers)] * 100)

    assert Counter(a.status_code for a in answers) == Counter({202: 1, 200: 99})
    assert all(a.json()["duplicate"] for a in answers if a.status_code == 200)
    assert len({tuple(a.json()["run_ids"]) for a in answers}) == 1
    assert (count(rt, Event), count(rt, Run)) == (1, 1)
    assert rt.queue.count == 1

    drain(rt)

    [run_id] = answers[0].json()["run_ids"]
    assert statuses(rt, [run_id]) == {run_id: RunStatus.SUCCEEDED}
    assert invoices_per_deal(rt) == Counter({payload["deal_id"]: 1})


def test_thirty_concurrent_deliveries_of_one_deal_make_thirty_runs_and_one_invoice(rt, live_server):
    hook = make_hook(rt)
    payload = deal()
    body = json.dumps(payload).encode()
    deliveries = [(body, signed(hook.secret, body, msg_id=f"msg_{i}")) for i in range(30)]

    answers = post_all(live_server + hook.path, deliveries)

    assert [a.status_code for a in answers] == [202] * 30
    run_ids = sorted(rid for a in answers for rid in a.json()["run_ids"])
    assert len(set(run_ids)) == 30
    assert (count(rt, Event), count(rt, Run)) == (30, 30)

    drain(rt)

    assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    assert invoices_per_deal(rt) == Counter({payload["deal_id"]: 1})
    outputs = invoice_outputs(rt, run_ids)
    assert len({o["invoice_id"] for o in outputs}) == 1
    assert Counter(o["created"] for o in outputs) == Counter({True: 1, False: 29})
    assert count(rt, Deal) == 1
    assert count(rt, Customer) == 1


def test_runs_of_one_deal_executed_at_once_without_the_deal_lock_make_one_invoice(rt, client):
    """The Redis deal lock keeps the runs of a deal apart; the database's unique keys alone must
    still make one invoice when they do overlap (the lock lost with Redis, say)."""
    hook = make_hook(rt)
    payload = deal()
    run_ids = [post_deal(client, hook, payload).json["run_ids"][0] for _ in range(12)]
    rt.redis.flushdb()  # run here directly, without the queue and its deal lock

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(
            pool.map(
                lambda rid: runner.execute_run(rt.sessions, rt.registry, rid, tools=rt.tools),
                run_ids,
                timeout=40,
            )
        )
    finish_retries(rt, run_ids)

    assert statuses(rt, run_ids) == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    assert invoices_per_deal(rt) == Counter({payload["deal_id"]: 1})
    outputs = invoice_outputs(rt, run_ids)
    assert Counter(o["created"] for o in outputs) == Counter({True: 1, False: 11})
    assert count(rt, Deal) == 1
    assert count(rt, Customer) == 1


# --- The sweeper and a claim racing ---------------------------------------------------------


def postgres_lock_waiters(rt: Runtime, application: str) -> set[int]:
    """Backends of this test waiting for any lock."""
    with rt.sessions() as s:
        return set(
            s.scalars(
                sa.text(
                    "SELECT DISTINCT a.pid FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.application_name = :app"
                ),
                {"app": application},
            )
        )


@pytest.mark.parametrize("database_url", POSTGRESQL_ONLY, indirect=True)
def test_a_run_claimed_while_the_sweeper_looks_is_not_queued_again(settings, rt, client):
    """The sweeper reads the overdue runs, then updates them: a worker that claims one in
    between is running it, and the sweeper must leave it alone (or two workers run it)."""
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    rt.redis.flushdb()
    overdue(rt, run_id)  # queued, overdue, its job gone: the sweeper's to re-enqueue
    app = app_name(settings)
    lock_engine = sa.create_engine(settings.database_url, poolclass=NullPool)
    holder = lock_engine.connect()
    try:
        # The worker's claim updates the run, then waits (uncommitted) to log its attempt.
        holder.exec_driver_sql("LOCK TABLE run_attempts IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=2) as pool:
            worker = pool.submit(
                runner.execute_run, rt.sessions, rt.registry, run_id, tools=rt.tools
            )
            [claiming] = wait_for(
                lambda: postgres_lock_waiters(rt, app), 20, "the claim to wait for run_attempts"
            )
            # The sweeper sees the run still queued and overdue; its update waits for the claim.
            sweeper = pool.submit(jobs.sweep, rt)
            wait_for(
                lambda: postgres_lock_waiters(rt, app) - {claiming},
                20,
                "the sweeper to wait for the claimed run",
            )
            holder.rollback()  # the claim commits; the sweeper's update goes on
            swept = sweeper.result(timeout=30)
            outcome = worker.result(timeout=30)
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):
            holder.close()
        lock_engine.dispose()

    assert outcome.status == "succeeded"
    assert swept == []  # the run was claimed by a live worker: not lost
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.SUCCEEDED
        assert [(a.attempt, a.status) for a in run.attempts_log] == [(1, RunStatus.SUCCEEDED)]
