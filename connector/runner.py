"""Execute one run: resume after the last finished step, map, validate, act, log, classify.

Pure core: no Flask, no RQ. The caller (connector.jobs) decides how a retry is scheduled.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from connector import mapping, public_events, steps
from connector.errors import (
    ConfigurationError,
    FailureClass,
    PuenteError,
    TransientError,
)
from connector.flows import CompiledFlow, CompiledStep, compile_flow
from connector.models import (
    Event,
    FlowVersion,
    Run,
    RunAttempt,
    RunKey,
    RunStatus,
    RunStep,
    StepStatus,
)
from connector.redaction import holding, redact
from connector.registry import Registry
from connector.spec import ActionContext, ActionSpec, Effects, Entity, ServiceRegistry
from database import insert_ignore, reading, utcnow

if TYPE_CHECKING:
    from connector.crypto import SecretBox
    from connector.http_client import HttpClient

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
QUEUED_GRACE = timedelta(seconds=60)  # a queued run not started by then is checked by the sweeper
CLAIM_GRACE = 30  # seconds a claim outlives its job's timeout: then the sweeper may take the run
FILTER = "filter"  # what a filter step's row shows as its action
MAX_STORED_BYTES = 64 * 1024  # per stored step input or output
MAX_KEY_VALUE = 100  # RunKey.value's length

# The runner's own statements, built once (building one costs more than running it on
# SQLite). Keys given at execution besides the b_* ones are the columns they set.
_runs, _events, _versions, _steps, _attempts, _keys = (
    cast(Table, model.__table__) for model in (Run, Event, FlowVersion, RunStep, RunAttempt, RunKey)
)
_other = _runs.alias("other")
_CLAIM = (
    update(_runs)
    .where(
        _runs.c.id.in_(bindparam("b_runs", expanding=True)),
        _runs.c.status == RunStatus.QUEUED,
        # A run that has begun holds its deal until it ends, between its attempts too: no
        # other run of the deal starts meanwhile (the deal's lock covers one attempt only).
        # Should two have begun at once (the lock lost with Redis), the earlier goes first.
        ~exists().where(
            _other.c.entity_key == _runs.c.entity_key,
            _other.c.id != _runs.c.id,
            or_(
                _other.c.status == RunStatus.RUNNING,
                and_(_other.c.status == RunStatus.QUEUED, _other.c.attempts > 0),
            ),
            or_(_other.c.id < _runs.c.id, _runs.c.attempts == 0),
        ),
    )
    .values(
        status=RunStatus.RUNNING,
        attempts=_runs.c.attempts + 1,
        job_id=func.coalesce(bindparam("job", type_=String), _runs.c.job_id),
    )
    .returning(
        _runs.c.id,
        _runs.c.event_id,
        _runs.c.flow_version_id,
        _runs.c.attempts,
        _runs.c.replays,
        _runs.c.trigger_override,
        _runs.c.enqueued_at,
        _runs.c.created_at,
        # What the attempt needs comes back with the claim: one round trip. (SQLite's
        # RETURNING cannot name an UPDATE … FROM's tables; subqueries it takes.)
        *(
            select(column).where(column.table.c.id == key).scalar_subquery().label(column.name)
            for column, key in (
                (_events.c.payload, _runs.c.event_id),
                (_events.c.scope, _runs.c.event_id),
                (_versions.c.document, _runs.c.flow_version_id),
            )
        ),
    )
)
_STATUS = select(_runs.c.status).where(_runs.c.id == bindparam("b_run"))
_STORED_STEPS = select(
    _steps.c.step_id, _steps.c.status, _steps.c.input, _steps.c.output, _steps.c.resume_sealed
).where(_steps.c.run_id == bindparam("b_run"))
_LOGGED_ATTEMPTS = (
    select(func.count()).select_from(_attempts).where(_attempts.c.run_id == bindparam("b_run"))
)
_ADD = {table.name: insert(table) for table in (_steps, _attempts)}
_SET_RUN = update(_runs).where(_runs.c.id == bindparam("b_run"))
_SET_STEP = (
    update(_steps)
    .where(_steps.c.run_id == bindparam("b_run"), _steps.c.step_id == bindparam("b_step"))
    .values(attempts=_steps.c.attempts + 1)
)
_CLOSE_ATTEMPT = update(_attempts).where(
    _attempts.c.run_id == bindparam("b_run"),
    _attempts.c.attempt == bindparam("b_attempt"),
    _attempts.c.finished_at.is_(None),  # the sweeper may have closed it already: lost
)


@dataclass(frozen=True)
class Outcome:
    # "succeeded", "failed", "stopped", "retry", "skipped" (not ours to run) or "waiting"
    # (another run of its deal has begun and not ended: try again later)
    status: str
    retry_in: float | None = None
    attempts: int = 0  # the run's attempts so far, when it is to be retried


@dataclass(frozen=True)
class Tools:
    """What the process gives steps besides the database (a worker: Runtime.tools)."""

    services: ServiceRegistry = field(default_factory=ServiceRegistry)
    http: HttpClient | None = None  # outbound calls (connections, guard, rate limits)
    secrets: SecretBox | None = None  # seals outputs the log masks, for a faithful resume

    def context(
        self,
        session: Session | None,
        step: CompiledStep,
        key: str,
        entity: Entity | None,
        logger: str = "puente",
    ) -> ActionContext:
        """The one ActionContext an action gets."""
        assert step.action is not None
        return ActionContext(
            idempotency_key=key,
            log=logging.getLogger(f"{logger}.{step.action.key}"),
            session=session,
            services=self.services,
            http=self.http,
            connection=step.connection,
            entity=entity,
        )


def idempotency_key(event_id: int, flow_version_id: int, step_id: str) -> str:
    """The key an action call carries: the same event, flow version and step give the same key."""
    return f"puente:e{event_id}:v{flow_version_id}:{step_id}"


def backoff_seconds(
    attempt: int, retry_after: float | None = None, base: float = BACKOFF_BASE_SECONDS
) -> float:
    """Exponential backoff with jitter; a server's Retry-After is a floor."""
    ceiling = min(BACKOFF_CAP_SECONDS, base * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


_compiled: dict[int, tuple[Registry, dict[str, Any], CompiledFlow]] = {}


def _flow(version_id: int, document: dict[str, Any], registry: Registry) -> CompiledFlow:
    """Compile a flow version once per process (versions are immutable).

    The hit is checked against the document and registry too, so a process that talks to
    several databases (tests) never runs another database's version 1.
    """
    hit = _compiled.get(version_id)
    if hit is not None and hit[0] is registry and hit[1] == document:
        return hit[2]
    if len(_compiled) > 500:
        _compiled.clear()
    flow = compile_flow(document, registry)
    _compiled[version_id] = (registry, document, flow)
    return flow


def execute_run(
    sessions: sessionmaker[Session],
    registry: Registry,
    run_id: int,
    *,
    run_timeout: int = 300,
    now: Callable[[], datetime] = utcnow,
    tools: Tools | None = None,
) -> Outcome:
    """Run a queued run to its end, or to its first failure; `tools` are what the actions
    get besides the database (Runtime.tools in a worker).

    Steps with only database effects share a transaction, each in a savepoint with its row:
    on the happy path a run is two transactions, the claim and then its steps with the finish.
    A step that reaches the outside world (mail, HTTP) gets a transaction of its own, so what
    it did is committed with its row before anything else can fail. A failed step rolls back
    to its savepoint (unless its error keeps what it wrote as the failure's record, like a
    refused email), and its row, the steps before it and the failure commit together: a
    retry resumes at the first unfinished step. A replay with an edited trigger performs
    again the finished upsert steps whose mapped input changed (see _Attempt._step).
    """
    tools = tools or Tools()
    claims = claim_runs(sessions, [run_id], now(), run_timeout, tools.secrets)
    return execute_claimed(sessions, registry, run_id, claims.get(run_id), now=now, tools=tools)


def execute_claimed(
    sessions: sessionmaker[Session],
    registry: Registry,
    run_id: int,
    claim: Claim | None,
    *,
    now: Callable[[], datetime] = utcnow,
    tools: Tools | None = None,
) -> Outcome:
    """execute_run, for a run claimed already (claim_runs); None when the claim did not take it."""
    return execute_claims(sessions, registry, {run_id: claim}, now=now, tools=tools)[run_id]


def execute_claims(
    sessions: sessionmaker[Session],
    registry: Registry,
    claims: Mapping[int, Claim | None],
    *,
    now: Callable[[], datetime] = utcnow,
    tools: Tools | None = None,
) -> dict[int, Outcome]:
    """execute_claimed for runs claimed together (run id → its claim, None when the claim did
    not take it); each run's outcome.

    The runs whose steps left are database steps only (one batch) share one transaction, each
    committed with the others or not at all: what a run costs besides its own statements
    (BEGIN, COMMIT, a connection from the pool, SQLite's write lock) is paid once for them.
    Should one of them fail, the transaction rolls back, as nothing of it went outside, and
    each runs alone, as it would have. The others run alone, one after another."""
    tools = tools or Tools()
    outcomes: dict[int, Outcome] = {}
    together: list[tuple[_Attempt, list[CompiledStep]]] = []
    alone: list[tuple[_Attempt, list[list[CompiledStep]]]] = []
    for run_id, claim in claims.items():
        if claim is None:
            outcomes[run_id] = _unclaimed(sessions, run_id)
            continue
        try:
            flow = _flow(claim.version_id, claim.document, registry)
        except ConfigurationError as exc:
            with sessions.begin() as s:
                outcomes[run_id] = _fail(s, claim, exc, now)
            continue
        attempt = _Attempt(
            claim,
            tools,
            flow.lookups,
            now,
            {"trigger": claim.payload, "steps": dict(claim.done)},
            _entity(flow, claim.payload, claim.scope),
        )
        batches = _batches([step for step in flow.steps if attempt.to_run(step)])
        if len(batches) == 1 and not _external(batches[0][0]):
            together.append((attempt, batches[0]))
        else:
            alone.append((attempt, batches))
    shared = _run_together(sessions, together) if len(together) > 1 else None
    if shared is None:
        alone += [(attempt, [batch]) for attempt, batch in together]
    else:
        outcomes |= shared
    for attempt, batches in alone:
        outcomes[attempt.claim.run_id] = _run_batches(sessions, attempt, batches)
    return outcomes


def _unclaimed(sessions: sessionmaker[Session], run_id: int) -> Outcome:
    with reading(sessions) as s:
        if s.scalar(_STATUS, {"b_run": run_id}) == RunStatus.QUEUED:
            log.info("run %s waits: another run of its deal has begun", run_id)
            return Outcome("waiting")
    log.info("run %s is not queued (finished or taken by another worker); skipping", run_id)
    return Outcome("skipped")


def _run_batches(
    sessions: sessionmaker[Session], attempt: _Attempt, batches: list[list[CompiledStep]]
) -> Outcome:
    for n, batch in enumerate(batches, 1):
        outcome = _run_batch(sessions, attempt, batch, last=n == len(batches))
        if outcome is not None:
            return outcome
    with sessions.begin() as s:  # no step left to run (all done by earlier attempts)
        _succeeded(s, [attempt])
    return Outcome("succeeded")


def _run_together(
    sessions: sessionmaker[Session], group: list[tuple[_Attempt, list[CompiledStep]]]
) -> dict[int, Outcome] | None:
    """Run each attempt's one batch of database steps to its end, all in one transaction, and
    commit it; their outcomes, or None when one of them raised (a step failed, or the
    database did): then nothing of the transaction stayed, and the attempts are as before."""
    waited = [attempt.waited for attempt, _ in group]
    outcomes: dict[int, Outcome] = {}
    try:
        with sessions.begin() as s:
            for attempt, batch in group:
                outcome = attempt.run(s, batch, careful=False)
                outcomes[attempt.claim.run_id] = outcome or Outcome("succeeded")
            _succeeded(
                s,
                [
                    attempt
                    for attempt, _ in group
                    if outcomes[attempt.claim.run_id].status == "succeeded"
                ],
            )
    except Exception as exc:
        log.info(
            "runs %s, run together, went back (%s): each runs alone",
            [attempt.claim.run_id for attempt, _ in group],
            type(exc).__name__,
        )
        for (attempt, _), wait in zip(group, waited, strict=True):
            attempt.undone()
            attempt.waited = wait
        return None
    for attempt, _ in group:
        attempt.committed()
    return outcomes


class _Again(Exception):
    """A step after the batch's first failed, with no savepoint to undo its writes alone."""


def _run_batch(
    sessions: sessionmaker[Session],
    attempt: _Attempt,
    batch: list[CompiledStep],
    *,
    last: bool,
    careful: bool = False,
) -> Outcome | None:
    """Run `batch` and commit it, with the run's finish when it is the `last`; an outcome when
    the run ends here.

    In one go first, with no savepoints: two statements fewer per step after the first.
    Should such a step fail, and its writes have to go, the transaction rolls back and the
    batch runs again `careful`ly, each step after the first in a savepoint, so that the steps
    before it commit with its failure (Attempt.run). Only database steps share a batch, so
    nothing outside saw the first try: a failure costs the batch twice, and a step that
    failed for a moment (a deadlock, say) may pass the second time."""
    waited = attempt.waited
    try:
        with sessions.begin() as s:
            outcome = attempt.run(s, batch, careful)
            if outcome is None and last:
                _succeeded(s, [attempt])
                outcome = Outcome("succeeded")
            elif outcome is None:
                _write(s, [attempt])
    except _Again:
        attempt.undone()
        attempt.waited = waited  # the batch's first step logs the queue wait, again
        return _run_batch(sessions, attempt, batch, last=last, careful=True)
    except Exception as exc:  # the transaction is lost (connection, commit, or the
        # batch's first step failed: Attempt.run): log it anew
        attempt.undone()
        with sessions.begin() as s:
            return attempt.lost(s, exc)
    attempt.committed()
    return outcome


def _connection_lost(exc: Exception) -> bool:
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _entity(flow: CompiledFlow, payload: Any, scope: str | None) -> Entity | None:
    """What the run's trigger item is about, within the integration it arrived on."""
    entity = flow.trigger.entity(payload) if isinstance(payload, dict) else None
    return None if entity is None else entity.arrived_on(scope)


def _batches(steps: list[CompiledStep]) -> list[list[CompiledStep]]:
    """Consecutive steps with only database effects together; each external step alone."""
    batches: list[list[CompiledStep]] = []
    for step in steps:
        if not batches or _external(step) or _external(batches[-1][-1]):
            batches.append([step])
        else:
            batches[-1].append(step)
    return batches


def _external(step: CompiledStep) -> bool:
    return step.action is not None and step.action.effects is not Effects.DATABASE


@dataclass(frozen=True)
class Claim:
    """A run taken by this worker, with what its attempt needs."""

    run_id: int
    event_id: int
    version_id: int
    attempt: int  # its number in the run's history of attempts
    attempts: int  # attempts against the retry budget (a replay starts a new budget)
    payload: Any
    scope: str | None  # the integration its event arrived on
    document: dict[str, Any]
    waited: int  # ms from enqueued to started
    stored: frozenset[str]  # steps with a row already (an earlier attempt)
    done: dict[str, Any]  # outputs of the steps an earlier attempt finished
    done_inputs: dict[str, Any]  # their inputs, as logged
    edited: bool  # a replay with a corrected trigger


def claim_runs(
    sessions: sessionmaker[Session],
    run_ids: Collection[int],
    started: datetime,
    run_timeout: int,
    secrets: SecretBox | None = None,
    job: str | None = None,
) -> dict[int, Claim]:
    """Mark the runs running and read what each needs, in one transaction: a claim for each
    run taken; a run not queued, or whose deal another run holds, is left out.

    With `job`, the runs are claimed under that job (a job running runs queued behind its
    own): should it end before them, the sweeper takes them back at once."""
    with sessions.begin() as s:
        rows = s.execute(
            _CLAIM,
            {
                "b_runs": list(run_ids),
                "job": job,
                "started_at": started,
                "deadline_at": started + timedelta(seconds=run_timeout + CLAIM_GRACE),
            },
        ).all()
        claims: dict[int, Claim] = {}
        for row in sorted(rows, key=lambda row: row.id):
            # Only a run's very first attempt is sure to find no step rows and no history.
            first = row.attempts == 1 and row.replays == 0
            steps = [] if first else s.execute(_STORED_STEPS, {"b_run": row.id}).all()
            logged: int = 0 if first else s.scalar(_LOGGED_ATTEMPTS, {"b_run": row.id}) or 0
            claims[row.id] = Claim(
                run_id=row.id,
                event_id=row.event_id,
                version_id=row.flow_version_id,
                attempt=logged + 1,
                attempts=row.attempts,
                payload=row.payload if row.trigger_override is None else row.trigger_override,
                scope=row.scope,
                document=row.document,
                waited=_queue_wait(row.enqueued_at or row.created_at, started),
                stored=frozenset(step.step_id for step in steps),
                done={
                    st.step_id: _resumed(st.output, st.resume_sealed, secrets)
                    for st in steps
                    if st.status == StepStatus.SUCCEEDED
                },
                done_inputs={
                    st.step_id: st.input for st in steps if st.status == StepStatus.SUCCEEDED
                },
                edited=row.trigger_override is not None,
            )
        if claims:
            s.execute(
                _ADD["run_attempts"],
                [
                    {
                        "run_id": claim.run_id,
                        "attempt": claim.attempt,
                        "status": RunStatus.RUNNING,
                        "flow_version_id": claim.version_id,
                        "started_at": started,
                        "edited_trigger": claim.edited,
                    }
                    for claim in claims.values()
                ],
            )
    return claims


@dataclass
class _Attempt:
    """One attempt's way through the steps: their outputs, and the step in progress."""

    claim: Claim
    tools: Tools
    lookups: dict[str, dict[str, Any]]
    now: Callable[[], datetime]
    data: dict[str, Any]
    entity: Entity | None
    waited: int | None = None  # queue wait, logged on the attempt's first step
    step: CompiledStep | None = None
    started: datetime | None = None
    clock: float = 0.0
    mapped: list[Any] = field(default_factory=list)  # the step's inputs, once mapped
    cause: Exception | None = None  # what the step in progress raised
    held: set[str] = field(default_factory=set)  # secrets its connections handed out
    rows: list[dict[str, Any]] = field(default_factory=list)  # new step rows, not written yet
    keys: list[dict[str, Any]] = field(default_factory=list)  # and the run's business keys

    def __post_init__(self) -> None:
        self.waited = self.claim.waited

    def to_run(self, step: CompiledStep) -> bool:
        """Steps not finished yet, and, in a replay with a corrected trigger, the finished
        upserts inside our database (performed again if their input changed)."""
        return step.id not in self.claim.done or (self.claim.edited and _upsert(step))

    def run(self, s: Session, batch: list[CompiledStep], careful: bool) -> Outcome | None:
        """Run `batch` in `s`, each step with its row; an outcome when the run ends here
        (stopped by a filter, or failed: the new rows are written then), None to go on (the
        caller writes them, with other runs' when it can: _write, _succeeded).

        A failed step's effects are undone (unless its error keeps what it wrote as the
        failure's record, like a refused e-mail) and its failure logged with the steps before
        it. The first step has no savepoint, as nothing else is in the transaction yet: its
        failure is raised, the transaction rolls back, and _run_batch logs it anew (`lost`),
        as when a commit fails. A later one is undone by its savepoint when `careful`; else
        _Again is raised, for _run_batch to run the batch again carefully, unless the
        database connection was lost: then nothing can run in this transaction any more, and
        it goes as the first step's failure does."""
        for n, step in enumerate(batch):
            self.step, self.started, self.clock = step, self.now(), time.perf_counter()
            self.mapped, self.cause, self.held = [], None, set()
            savepoint = s.begin_nested() if n and careful else None
            try:
                with holding(self.held):
                    passed = self._step(s, step)
            except Exception as exc:
                self.cause = exc
                if isinstance(exc, PuenteError) and exc.keeps_record:
                    if savepoint is not None:
                        savepoint.commit()
                elif savepoint is not None:
                    savepoint.rollback()
                elif n and not _connection_lost(exc):
                    raise _Again from exc
                else:
                    raise
                return self.failed(s, exc)
            if savepoint is not None:
                savepoint.commit()
            if not passed:
                _write(s, [self])
                _finish(s, [self.claim], RunStatus.STOPPED, _stopped(step), self.now())
                return Outcome("stopped")
            self.waited = None
        return None

    def _step(self, s: Session, step: CompiledStep) -> bool:
        """Perform one step and write its row; False when a filter stops the run."""
        assert self.started is not None
        if step.is_filter:
            value = steps.check_filter(step, self.data, self.lookups)
            passed = mapping.truthy(value)
            status = StepStatus.SUCCEEDED if passed else StepStatus.STOPPED
            output = {"passed": passed, "explain": step.explain}
            self._record(s, status, {"condition": value}, output, None)
            self.data["steps"][step.id] = {"passed": True}
            return passed
        inputs = steps.map_input(step, self.data, self.lookups)
        self.mapped.append(inputs)
        if step.id in self.claim.done and _logged(step, inputs) == self.claim.done_inputs.get(
            step.id
        ):
            return True  # a finished upsert whose input the correction did not change
        key = idempotency_key(self.claim.event_id, self.claim.version_id, step.id)
        ctx = self.tools.context(s, step, key, self.entity)
        output = steps.perform(step, ctx, inputs)
        self._record(s, StepStatus.SUCCEEDED, inputs, output, None)
        keys = _business_keys(step.action, output)
        self.keys += [{"run_id": self.claim.run_id, "name": n, "value": v} for n, v in keys.items()]
        self.data["steps"][step.id] = output
        return True

    def failed(self, s: Session, exc: Exception) -> Outcome:
        """Log the step in progress as failed and settle the run (retry, dead, failed) in `s`."""
        step = self.step
        error = steps.as_error(exc, step, f"run {self.claim.run_id}")
        if step is not None:
            inputs = self.mapped[0] if self.mapped else None
            self._record(s, StepStatus.FAILED, inputs, None, error.as_dict())
        _write(s, [self])
        return _fail(s, self.claim, error, self.now, step.action if step else None, self.held)

    def committed(self) -> None:
        """The batch is committed: no step is in progress."""
        self.step, self.cause = None, None

    def undone(self) -> None:
        """The batch's transaction rolled back: nothing it wrote stayed."""
        self.rows, self.keys = [], []

    def lost(self, s: Session, exc: Exception) -> Outcome:
        """The batch's transaction was lost: nothing of it stayed; log the failure anew, with
        the step's own error when it had one (what broke the transaction)."""
        return self.failed(s, self.cause or exc)

    def _record(
        self,
        s: Session,
        status: StepStatus,
        inputs: Any,
        output: Any,
        error: dict[str, Any] | None,
    ) -> None:
        assert self.step is not None and self.started is not None
        row = _record_step(
            s,
            self.claim,
            self.step,
            status,
            inputs,
            output,
            error,
            self.started,
            self.now(),
            self.clock,
            self.waited,
            self.tools.secrets,
            self.held,
        )
        if row is not None:
            self.rows.append(row)


def _write(s: Session, attempts: Sequence[_Attempt]) -> None:
    """Add the attempts' new step rows, and index their runs by their business keys: one
    statement each, however many steps and runs."""
    rows = [row for attempt in attempts for row in attempt.rows]
    keys = [key for attempt in attempts for key in attempt.keys]
    if rows:
        s.execute(_ADD["run_steps"], rows)
    if keys:
        insert_ignore(s, _keys, keys, ["run_id", "name", "value"])
    for attempt in attempts:
        attempt.rows, attempt.keys = [], []


def _succeeded(s: Session, attempts: Sequence[_Attempt]) -> None:
    """The attempts' runs succeeded: their step rows and keys written, runs and attempts
    closed, in four statements however many runs."""
    if attempts:
        _write(s, attempts)
        claims = [attempt.claim for attempt in attempts]
        _finish(s, claims, RunStatus.SUCCEEDED, None, attempts[0].now())


def _upsert(step: CompiledStep) -> bool:
    return (
        step.action is not None and step.action.upsert and step.action.effects is Effects.DATABASE
    )


def _logged(step: CompiledStep, inputs: Any) -> Any:
    """The input as the log keeps it (masked, capped), to compare with a logged one."""
    return capped(redact(inputs, step.action.input_schema if step.action else None))


def _stopped(step: CompiledStep) -> dict[str, Any]:
    message = f"stopped at step '{step.id}': {step.explain}"
    return {"class": "stopped", "message": message, "errors": []}


def business_keys(declared: tuple[tuple[str, str], ...], data: Any) -> dict[str, str]:
    """The business keys `declared` as (name, dotted path) pairs found in `data`: for each
    name the first path with a value."""
    keys: dict[str, str] = {}
    for name, path in declared:
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if name not in keys and value not in (None, ""):
            keys[name] = str(value)[:MAX_KEY_VALUE]
    return keys


def _business_keys(action: ActionSpec | None, output: Any) -> dict[str, str]:
    return business_keys(action.business_keys, output) if action else {}


def _record_step(
    s: Session,
    claim: Claim,
    step: CompiledStep,
    status: StepStatus,
    inputs: Any,
    output: Any,
    error: dict[str, Any] | None,
    started: datetime,
    finished: datetime,
    clock: float,
    waited: int | None = None,
    secrets: SecretBox | None = None,
    held: Collection[str] = (),
) -> dict[str, Any] | None:
    """The step's new row, to add; or None, having updated the row an earlier attempt left
    (attempts + 1).

    The log keeps inputs and outputs masked and capped; when that changes a succeeded step's
    output, the real one is kept sealed for the steps after it (a retry, a replay)."""
    action = step.action
    logged = capped(redact(output, action.output_schema if action else None, held))
    sealed = None
    if status == StepStatus.SUCCEEDED and logged != output:
        if secrets is None:
            log.warning(
                "run %s: step %s's output is masked and cannot be sealed", claim.run_id, step.id
            )
        else:
            sealed = secrets.encrypt(json.dumps(output, ensure_ascii=False, default=str))
    values = {
        "status": status,
        "input": capped(redact(inputs, action.input_schema if action else None, held)),
        "output": logged,
        "resume_sealed": sealed,
        "error": redact(error, None, held) if error else error,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": round((time.perf_counter() - clock) * 1000),
        "queue_wait_ms": waited,
    }
    if step.id in claim.stored:
        s.execute(_SET_STEP, {"b_run": claim.run_id, "b_step": step.id, **values})
        return None
    row = {"run_id": claim.run_id, "step_id": step.id, "attempts": 1, **values}
    return {**row, "action_key": action.key if action else FILTER}


def _resumed(logged: Any, sealed: str | None, secrets: SecretBox | None) -> Any:
    """What a finished step gave, for the steps after it: the sealed output when there is one."""
    if sealed is None:
        return logged
    if secrets is None:
        raise ConfigurationError("a step's output is sealed and this process has no key to open it")
    return json.loads(secrets.decrypt(sealed))


def capped(value: Any, limit: int = MAX_STORED_BYTES) -> Any:
    """The value, or a marked preview when its JSON is over `limit` bytes (the log stays lean)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text.encode()) <= limit:
        return value
    return {"_truncated": True, "bytes": len(text.encode()), "preview": text[:2000]}


def _fail(
    s: Session,
    claim: Claim,
    error: PuenteError,
    now: Callable[[], datetime],
    action: ActionSpec | None = None,
    held: Collection[str] = (),
) -> Outcome:
    """Retry a transient failure while the action's policy allows; then the dead-letter list.

    The run keeps the error masked as its step's row does (a message may quote an answer)."""
    transient = error.failure_class is FailureClass.TRANSIENT
    shown = redact(error.as_dict(), None, held)
    most = action.max_attempts if action else MAX_ATTEMPTS
    if transient and claim.attempts < most:
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        base = action.backoff_base if action else BACKOFF_BASE_SECONDS
        delay = backoff_seconds(claim.attempts, retry_after, base)
        when = now()
        s.execute(
            _SET_RUN,
            {
                "b_run": claim.run_id,
                "status": RunStatus.QUEUED,
                "error": shown,
                "enqueued_at": when + timedelta(seconds=delay),
                "deadline_at": when + timedelta(seconds=delay) + QUEUED_GRACE,
            },
        )
        _close_attempts(s, [claim], "retry", shown, when)
        return Outcome("retry", delay, claim.attempts)
    status = RunStatus.DEAD if transient else RunStatus.FAILED
    _finish(s, [claim], status, shown, now())
    return Outcome(str(status))


def _finish(
    s: Session,
    claims: Sequence[Claim],
    status: RunStatus,
    error: dict[str, Any] | None,
    finished: datetime,
) -> None:
    """End the claims' runs, and their attempts, with `status` (one statement each)."""
    s.execute(
        _SET_RUN,
        [
            {
                "b_run": claim.run_id,
                "status": status,
                "error": error,
                "finished_at": finished,
                "deadline_at": None,
            }
            for claim in claims
        ],
    )
    _close_attempts(s, claims, status, error, finished)
    if status in (RunStatus.FAILED, RunStatus.DEAD):  # for Zapier, Make and the API
        public_events.run_failures(s, [claim.run_id for claim in claims], finished)


def _close_attempts(
    s: Session,
    claims: Sequence[Claim],
    status: str,
    error: dict[str, Any] | None,
    finished: datetime,
) -> None:
    """Close these attempts in their runs' history (unless the sweeper closed one already:
    lost)."""
    s.execute(
        _CLOSE_ATTEMPT,
        [
            {
                "b_run": claim.run_id,
                "b_attempt": claim.attempt,
                "status": status,
                "error": error,
                "finished_at": finished,
            }
            for claim in claims
        ],
    )


def _queue_wait(enqueued: datetime, started: datetime) -> int:
    return max(0, round((started - enqueued).total_seconds() * 1000))
