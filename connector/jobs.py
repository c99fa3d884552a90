"""RQ entry points and enqueueing. The database is the truth; Redis only carries run ids."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from sqlalchemy import and_, or_, select, update

from connector import public_events, runner, runtime
from connector.models import Run, RunAttempt, RunStatus
from connector.runtime import Runtime
from database import reading, utcnow

log = logging.getLogger(__name__)

EXECUTE_RUN = "connector.jobs.execute_run"
ALIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


def job_id(run_id: int, attempt: int = 0, replay: int = 0) -> str:
    """`run-<id>` for a run queued now, `run-<id>-a<n>` for a retry scheduled later,
    `run-<id>-r<n>` for its n-th replay scheduled later (paced)."""
    if attempt:
        return f"run-{run_id}-a{attempt}"
    return f"run-{run_id}-r{replay}" if replay else f"run-{run_id}"


def enqueue_runs(
    rt: Runtime,
    run_ids: Sequence[int],
    entities: Mapping[int, str | None] | None = None,
    bulk: bool = False,
) -> None:
    """Put run ids on the queue (the bulk queue with `bulk`) in one round trip.

    `entities` (run id → entity key, as the intake just stored it) rides with each job and
    saves the worker a read; without it the worker reads the key itself.
    """
    if not run_ids:
        return
    jobs = [
        Queue.prepare_data(
            EXECUTE_RUN,
            args=(run_id,) if entities is None else (run_id, entities[run_id]),
            job_id=job_id(run_id),
            timeout=rt.settings.run_timeout_seconds,
            result_ttl=3600,
            failure_ttl=7 * 86400,
        )
        for run_id in run_ids
    ]
    queue = rt.bulk_queue if bulk else rt.queue
    with rt.redis.pipeline() as pipe:
        for run_id in run_ids:  # an earlier failure under this job id (a swept run) is stale
            queue.failed_job_registry.remove(job_id(run_id), pipeline=pipe)
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()


def enqueue_later(rt: Runtime, run_id: int, delay: float, job: str) -> None:
    """Put a run on the scheduler as `job` (the id on its row), to start after `delay`
    seconds (paced replays)."""
    if delay <= 0:
        enqueue_runs(rt, [run_id])
        return
    rt.queue.enqueue_in(
        timedelta(seconds=delay),
        EXECUTE_RUN,
        run_id,
        job_id=job,
        job_timeout=rt.settings.run_timeout_seconds,
        failure_ttl=7 * 86400,
    )


ENTITY_LOCK_PREFIX = "puente:entity:"
BUSY_ENTITY_DELAY = 2.0  # seconds before a run whose deal is busy is tried again


UNKNOWN = "?"  # no entity key looks like this (intake.entity_key: "<source>:<deal>")


def execute_run(run_id: int, entity: str | None = UNKNOWN) -> str:
    """The RQ job: run it, and schedule the next attempt when the failure is transient; then,
    when the queue is long, run some of the runs queued behind it too (`_take_along`)."""
    rt = runtime.current()
    started = time.monotonic()
    [status] = _run_some(rt, [(run_id, entity)])
    _take_along(rt, started)
    return status


def _run_some(rt: Runtime, runs: list[tuple[int, str | None]], job: str | None = None) -> list[str]:
    """Run these runs (id, entity key) one after another, each under its deal's lock; their
    statuses. They are claimed together, in one transaction, under `job`, the job that
    carries them, when they are not its own (runner.claim_runs); a second run of a deal
    waits for the first to end, to be claimed after it (it may have to wait its turn).

    Runs for the same deal never interleave: each takes the deal's lock first, and waits its
    turn on the scheduler when the lock is taken or another run of the deal has begun and not
    ended, retries included (the claim checks that: see runner._CLAIM).
    """
    unknown = [run_id for run_id, entity in runs if entity == UNKNOWN]
    keys = _entity_keys(rt, unknown) if unknown else {}
    pending = [(run_id, keys.get(run_id) if e == UNKNOWN else e) for run_id, e in runs]
    statuses: dict[int, str] = {}
    while pending:
        first: list[tuple[int, str | None]] = []
        later: list[tuple[int, str | None]] = []
        deals: set[str] = set()
        for run_id, entity in pending:
            (later if entity in deals else first).append((run_id, entity))
            if entity:
                deals.add(entity)
        statuses |= _run_claimed_together(rt, first, job)
        pending = later
    return [statuses[run_id] for run_id, _ in runs]


def _entity_keys(rt: Runtime, run_ids: list[int]) -> dict[int, str | None]:
    """The entity keys of runs whose jobs came without them (the sweeper's, a replay's)."""
    with reading(rt.sessions) as s:
        rows = s.execute(select(Run.id, Run.entity_key).where(Run.id.in_(run_ids)))
        return {run_id: key for run_id, key in rows}


def _run_claimed_together(
    rt: Runtime, runs: list[tuple[int, str | None]], job: str | None
) -> dict[int, str]:
    """_run_some, for runs of different deals."""
    statuses: dict[int, str] = {}
    token = uuid.uuid4().hex
    locked = _lock_deals(rt, runs, token)
    try:
        for run_id, entity in runs:
            if entity and run_id not in locked:
                statuses[run_id] = _defer(rt, run_id, entity)
        ready = [(run_id, entity) for run_id, entity in runs if run_id not in statuses]
        claims = runner.claim_runs(
            rt.sessions,
            [run_id for run_id, _ in ready],
            utcnow(),
            rt.settings.run_timeout_seconds,
            rt.tools.secrets,
            job,
        )
        outcomes = runner.execute_claims(
            rt.sessions,
            rt.registry,
            {run_id: claims.get(run_id) for run_id, _ in ready},
            tools=rt.tools,
        )
    finally:
        _unlock_deals(rt, list(locked.values()), token)
    for run_id, entity in ready:
        outcome = outcomes[run_id]
        if outcome.status == "retry" and outcome.retry_in is not None:
            _schedule_retry(rt, run_id, entity, outcome.retry_in, outcome.attempts)
        status = outcome.status
        statuses[run_id] = _defer(rt, run_id, entity) if status == "waiting" else status
    return statuses


def _lock_deals(rt: Runtime, runs: list[tuple[int, str | None]], token: str) -> dict[int, str]:
    """Take the deal locks of these runs (id, entity key) under `token`, in one round trip:
    run id → lock key, for each lock taken (another run of the deal holds the others).

    A lock is free again by the time the sweeper may take its run back: a second before the
    claim's deadline (the claim comes after the lock, but Redis counts whole ms)."""
    keys = [(run_id, ENTITY_LOCK_PREFIX + entity) for run_id, entity in runs if entity]
    if not keys:
        return {}
    ttl = (rt.settings.run_timeout_seconds + runner.CLAIM_GRACE - 1) * 1000
    with rt.redis.pipeline(transaction=False) as pipe:
        for _, key in keys:
            pipe.set(key, token, nx=True, px=ttl)
        taken = pipe.execute()
    return {run_id: key for (run_id, key), ok in zip(keys, taken, strict=True) if ok}


# Deletes a lock only while it holds our token: one that expired may be another run's now.
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _unlock_deals(rt: Runtime, keys: list[str], token: str) -> None:
    """Release the deal locks taken under `token`, in one round trip."""
    if not keys:
        return
    with rt.redis.pipeline(transaction=False) as pipe:  # EVAL: no SCRIPT EXISTS round trip
        for key in keys:
            pipe.eval(_UNLOCK, 1, key, token)
        pipe.execute()


# A long queue is drained faster when one job runs several runs: RQ's own work per job
# (about 18 Redis round trips: dequeue, status, registries, result) is paid once for them,
# their claims are one transaction, and so are those whose steps stay in our database
# (runner.execute_claims). 8 at a time, 16 at most still left SQLite with 2 workers below
# its target in some runs (bench/RESULTS.md).
ALONG_AFTER = 8  # jobs waiting in the queue before a job takes some along
ALONG_BATCH = 16  # jobs taken off the queue at a time
ALONG_MOST = 32  # runs one job takes along
ALONG_SECONDS = 2.0  # nor any more once the job has run this long


def _take_along(rt: Runtime, started: float) -> int:
    """Run queued runs in this job while the queue is long; how many were run.

    Their jobs are taken off the queue and deleted before they run, so the database stays the
    truth: should this worker die meanwhile, each such run is either still queued with no job
    or running under this job, and the sweeper queues it again as it would after Redis lost a
    job or a worker died. The main queue only: the bulk one waits (connector.pace)."""
    job = get_current_job()
    done = 0
    while done < ALONG_MOST and time.monotonic() - started < ALONG_SECONDS:
        if rt.queue.count < ALONG_AFTER:
            break
        taken = _take_runs(rt, min(ALONG_BATCH, ALONG_MOST - done))
        if not taken:
            break
        try:
            _run_some(rt, taken, job.id if job else None)
        except Exception:  # the database or Redis went away: the batch goes back to the
            # queue; a run finished or claimed already is not queued, and its job skips it
            # (the sweeper takes a claimed one back once this job has ended)
            log.exception("runs %s, taken along, could not all run", [r for r, _ in taken])
            with contextlib.suppress(RedisError):
                enqueue_runs(rt, [r for r, _ in taken])
            return done
        done += len(taken)
    return done


def _take_runs(rt: Runtime, most: int) -> list[tuple[int, str | None]]:
    """Up to `most` runs from the head of the main queue, their jobs deleted; any other job
    found there goes back to the head, in its place."""
    key = rt.queue.key
    with rt.redis.pipeline() as pipe:  # LPOP one by one: any Redis (LPOP n needs 6.2)
        for _ in range(most):
            pipe.lpop(key)
        ids = [raw.decode() for raw in pipe.execute() if raw is not None]
    if not ids:
        return []
    runs, others = [], []
    for job_id_, job in zip(ids, Job.fetch_many(ids, connection=rt.redis), strict=True):
        if job is None:
            continue  # deleted meanwhile: nothing to run
        if job.func_name == EXECUTE_RUN and job.args:
            runs.append((job, (int(job.args[0]), job.args[1] if len(job.args) > 1 else UNKNOWN)))
        else:
            others.append(job_id_)
    with rt.redis.pipeline() as pipe:
        if others:
            pipe.lpush(key, *reversed(others))
        for job, _ in runs:
            pipe.delete(job.key)
        pipe.execute()
    return [run for _, run in runs]


def _defer(rt: Runtime, run_id: int, entity: str | None) -> str:
    """Try the run again in a moment: its deal is busy with another run."""
    job = rt.queue.enqueue_in(
        timedelta(seconds=BUSY_ENTITY_DELAY),
        EXECUTE_RUN,
        run_id,
        entity,
        job_timeout=rt.settings.run_timeout_seconds,
    )
    with rt.sessions.begin() as s:  # the sweeper looks for this job, not run-<id>
        s.execute(  # unless another job has taken the run meanwhile
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.QUEUED)
            .values(job_id=job.id)
        )
    log.info("run %s waits: another run for %s is in progress", run_id, entity)
    return "deferred"


def _schedule_retry(
    rt: Runtime, run_id: int, entity: str | None, delay: float, attempts: int
) -> None:
    new_id = job_id(run_id, attempts)
    with rt.sessions.begin() as s:
        s.execute(update(Run).where(Run.id == run_id).values(job_id=new_id))
    # A replay starts the count again: a finished job under this id would lend the new one its
    # expiry (RQ saves over it), and the retry could vanish before its time.
    with contextlib.suppress(NoSuchJobError):
        Job.fetch(new_id, connection=rt.redis).delete()
    rt.queue.enqueue_in(
        timedelta(seconds=delay),
        EXECUTE_RUN,
        run_id,
        entity,
        job_id=new_id,
        job_timeout=rt.settings.run_timeout_seconds,
        failure_ttl=7 * 86400,
    )
    log.info("run %s: transient failure, next attempt in %.1f s", run_id, delay)


UNFINISHED = "the attempt never finished: its worker stopped, or lost the database"
GAVE_UP = (
    "the last attempt never finished (its worker stopped, or lost the database) and the run "
    "has no attempts left: replay it once the cause is fixed"
)
ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def sweep(rt: Runtime, limit: int = 500) -> list[int]:
    """Re-enqueue runs whose job Redis lost or whose worker died or lost the database.

    A queued run is lost when its deadline has passed and its job is gone. A running run is
    lost when its deadline has passed, or at once when its job has ended: the job failed
    (its worker lost the database and could not record the failure) or finished without
    closing the run. A running run whose job is missing waits for its deadline: Redis may
    have lost the job while a worker is still on it. A run lost this way after using up its
    attempts goes to the dead-letter list instead of round again.
    """
    now = utcnow()
    with reading(rt.sessions) as s:
        rows = s.execute(
            select(Run.id, Run.status, Run.job_id, Run.deadline_at)
            .where(
                Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
                or_(
                    Run.status == RunStatus.RUNNING,
                    Run.deadline_at.is_(None),
                    Run.deadline_at < now,
                ),
            )
            .order_by(Run.id)
            .limit(limit)
        ).all()
    overdue: list[int] = []
    waiting: list[int] = []
    ended: dict[int, datetime] = {}  # run id → the deadline of the claim whose job has ended
    for run_id, status, current_job, deadline in rows:
        job = _job_status(rt, current_job or job_id(run_id))
        if deadline is not None and deadline >= now:
            if job in ENDED:
                ended[run_id] = deadline
        elif status == RunStatus.QUEUED and job in ALIVE:
            waiting.append(run_id)  # still waiting its turn in a long queue
        else:
            overdue.append(run_id)
    if waiting:
        with rt.sessions.begin() as s:
            s.execute(  # a run claimed since it was read has its own deadline: kept
                update(Run)
                .where(
                    Run.id.in_(waiting),
                    Run.status == RunStatus.QUEUED,
                    or_(Run.deadline_at.is_(None), Run.deadline_at < now),
                )
                .values(deadline_at=now + runner.QUEUED_GRACE)
            )
    if not overdue and not ended:
        return []
    with rt.sessions.begin() as s:
        # Re-check while writing: a worker may have claimed a run (new deadline) since it was
        # read, and that run is not lost.
        still = or_(
            and_(Run.id.in_(overdue), or_(Run.deadline_at.is_(None), Run.deadline_at < now)),
            *(
                and_(Run.id == run_id, Run.status == RunStatus.RUNNING, Run.deadline_at == claim)
                for run_id, claim in ended.items()
            ),
        )
        lost = s.execute(
            select(Run.id, Run.status, Run.attempts)
            .where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]), still)
            .with_for_update()
        ).all()
        # A run that lost its worker in its last allowed attempt is not tried again; a queued
        # run whose job Redis lost has an attempt to come, and gets it.
        most = max((a.max_attempts for a in rt.registry.actions.values()), default=0)
        spent = sorted(r.id for r in lost if r.status == RunStatus.RUNNING and r.attempts >= most)
        again = sorted(r.id for r in lost if r.id not in spent)
        error = {"class": "transient", "message": UNFINISHED, "errors": []}
        if again:
            s.execute(
                update(Run)
                .where(Run.id.in_(again))
                .values(
                    status=RunStatus.QUEUED,
                    job_id=None,
                    enqueued_at=now,
                    deadline_at=now + runner.QUEUED_GRACE,
                )
            )
        if spent:
            s.execute(
                update(Run)
                .where(Run.id.in_(spent))
                .values(
                    status=RunStatus.DEAD,
                    finished_at=now,
                    deadline_at=None,
                    error={**error, "message": GAVE_UP},
                )
            )
            public_events.run_failures(s, spent, now)
        # An attempt a dead worker left open is closed in the run's history.
        s.execute(
            update(RunAttempt)
            .where(RunAttempt.run_id.in_(again + spent), RunAttempt.finished_at.is_(None))
            .values(status="lost", finished_at=now, error=error)
        )
    enqueue_runs(rt, again)
    if again:
        log.warning("sweeper re-enqueued %d run(s): %s", len(again), again)
    if spent:
        log.error("sweeper gave up on %d run(s) lost in their last attempt: %s", len(spent), spent)
    return sorted(again + spent)


def _job_status(rt: Runtime, job: str) -> JobStatus | None:
    """The job's status; None when Redis no longer has it."""
    try:
        return Job.fetch(job, connection=rt.redis).get_status(refresh=False)  # just fetched
    except NoSuchJobError:
        return None
