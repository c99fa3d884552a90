"""Execute one run: resume after the last finished step, map, validate, act, log, classify.

Pure core: no Flask, no RQ. The caller (connector.jobs) decides how a retry is scheduled.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from connector import mapping, schemas
from connector.db import utcnow
from connector.errors import (
    ConfigurationError,
    FailureClass,
    PuenteError,
    TransientError,
    ValidationError,
)
from connector.flows import CompiledFlow, CompiledStep, compile_flow
from connector.models import Run, RunAttempt, RunStatus, RunStep, StepStatus
from connector.redaction import redact
from connector.registry import Registry
from connector.spec import ActionSpec
from invoicing.service import Invoicing

if TYPE_CHECKING:
    from connector.http_client import HttpClient
    from connector.settings import Settings
    from invoicing.facturae import SigningCredentials

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
QUEUED_GRACE = timedelta(seconds=60)  # a queued run not started by then is checked by the sweeper
FILTER = "filter"  # what a filter step's row shows as its action
MAX_STORED_BYTES = 64 * 1024  # per stored step input or output


@dataclass(frozen=True)
class Outcome:
    status: str  # "succeeded", "failed", "stopped", "retry" or "skipped" (not ours to run)
    retry_in: float | None = None


@dataclass
class StepContext:
    """The ActionContext given to actions."""

    idempotency_key: str
    invoicing: Invoicing
    log: logging.Logger
    public_url: str
    settings: Settings | None = None  # outgoing mail and the like
    signing: SigningCredentials | None = None  # for Facturae files, when configured
    http: HttpClient | None = None  # outbound calls (connections, guard, rate limits)


@dataclass(frozen=True)
class Services:
    """What the process offers every action besides the database."""

    public_url: str = ""
    settings: Settings | None = None
    signing: SigningCredentials | None = None
    http: HttpClient | None = None


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


class _StepFailed(Exception):
    def __init__(self, error: PuenteError) -> None:
        super().__init__(error.message)
        self.error = error


def execute_run(
    sessions: sessionmaker[Session],
    registry: Registry,
    run_id: int,
    *,
    public_url: str = "",
    run_timeout: int = 300,
    now: Callable[[], datetime] = utcnow,
    settings: Settings | None = None,
    signing: SigningCredentials | None = None,
    http: HttpClient | None = None,
) -> Outcome:
    """Run a queued run to its end, or to its first failure."""
    started = now()
    with sessions.begin() as s:
        claimed = s.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.QUEUED)
            .values(
                status=RunStatus.RUNNING,
                attempts=Run.attempts + 1,
                started_at=started,
                deadline_at=started + timedelta(seconds=run_timeout + 30),
            )
        ).rowcount  # type: ignore[attr-defined]
        if claimed:
            run = s.get_one(Run, run_id)
            logged = (
                s.scalar(
                    select(func.count()).select_from(RunAttempt).where(RunAttempt.run_id == run_id)
                )
                or 0
            )
            s.add(
                RunAttempt(
                    run_id=run_id,
                    attempt=logged + 1,
                    status=RunStatus.RUNNING,
                    flow_version_id=run.flow_version_id,
                    started_at=started,
                    edited_trigger=run.trigger_override is not None,
                )
            )
    if not claimed:
        log.info("run %s is not queued (finished or taken by another worker); skipping", run_id)
        return Outcome("skipped")

    with sessions() as s:
        run = s.get_one(Run, run_id)
        payload = run.trigger_override if run.trigger_override is not None else run.event.payload
        event_id, version_id, attempts = run.event_id, run.flow_version_id, run.attempts
        waited: int | None = _queue_wait(run.enqueued_at or run.created_at, started)
        document = run.flow_version.document
        done = {
            step.step_id: step.output
            for step in s.scalars(select(RunStep).where(RunStep.run_id == run_id))
            if step.status == StepStatus.SUCCEEDED
        }

    services = Services(public_url, settings, signing, http)
    failing: CompiledStep | None = None
    try:
        flow = _flow(version_id, document, registry)
        data: dict[str, Any] = {"trigger": payload, "steps": {}}
        for step in flow.steps:
            if step.id in done:
                data["steps"][step.id] = done[step.id]
                continue
            if step.is_filter:
                if not _passes(sessions, run_id, step, data, flow.lookups, now):
                    message = f"stopped at step '{step.id}': {step.explain}"
                    _finish(
                        sessions,
                        run_id,
                        RunStatus.STOPPED,
                        {"class": "stopped", "message": message, "errors": []},
                        now(),
                    )
                    return Outcome("stopped")
                data["steps"][step.id] = {"passed": True}
                continue
            key = idempotency_key(event_id, version_id, step.id)
            failing = step
            data["steps"][step.id] = _run_step(
                sessions, run_id, step, data, key, services, flow.lookups, now, waited
            )
            waited = None  # only the attempt's first step waited in the queue
    except (_StepFailed, ConfigurationError) as exc:
        error = exc.error if isinstance(exc, _StepFailed) else exc
        action = failing.action if isinstance(exc, _StepFailed) and failing else None
        return _fail(sessions, run_id, error, attempts, now, action)
    _finish(sessions, run_id, RunStatus.SUCCEEDED, None, now())
    return Outcome("succeeded")


def _passes(
    sessions: sessionmaker[Session],
    run_id: int,
    step: CompiledStep,
    data: dict[str, Any],
    lookups: dict[str, dict[str, Any]],
    now: Callable[[], datetime],
) -> bool:
    """Evaluate a filter step and log its outcome; JMESPath's falsy values stop the run."""
    started, clock = now(), time.perf_counter()
    try:
        value = mapping.evaluate(step.condition, data, lookups)
    except ConfigurationError as exc:
        with sessions.begin() as s:
            _record_step(
                s, run_id, step, StepStatus.FAILED, None, None, exc.as_dict(), started, now(), clock
            )
        raise _StepFailed(exc) from None
    passed = value not in (False, None, "", [], {})
    with sessions.begin() as s:
        _record_step(
            s,
            run_id,
            step,
            StepStatus.SUCCEEDED if passed else StepStatus.STOPPED,
            {"condition": value},
            {"passed": passed, "explain": step.explain},
            None,
            started,
            now(),
            clock,
        )
    return passed


def _run_step(
    sessions: sessionmaker[Session],
    run_id: int,
    step: CompiledStep,
    data: dict[str, Any],
    key: str,
    services: Services,
    lookups: dict[str, dict[str, Any]],
    now: Callable[[], datetime],
    waited: int | None = None,
) -> Any:
    """Perform one step; its effect and its success row commit together or not at all."""
    assert step.action is not None
    started, clock = now(), time.perf_counter()
    inputs: Any = None
    try:
        inputs = mapping.evaluate(step.input, data, lookups)
        errors = schemas.validate(step.action.input_schema, inputs)
        if errors:
            raise ValidationError.from_field_errors(
                f"step '{step.id}': the input is not valid", errors
            )
        with sessions.begin() as s:
            ctx = StepContext(
                key,
                Invoicing(s),
                logging.getLogger(f"puente.{step.action.key}"),
                services.public_url,
                services.settings,
                services.signing,
                services.http,
            )
            output = step.action.perform(ctx, inputs)
            errors = schemas.validate(step.action.output_schema, output)
            if errors:
                raise PuenteError.from_field_errors(
                    f"action {step.action.key} returned output that breaks its schema", errors
                )
            _record_step(
                s,
                run_id,
                step,
                StepStatus.SUCCEEDED,
                inputs,
                output,
                None,
                started,
                now(),
                clock,
                waited,
            )
            _index(s, run_id, output)
        return output
    except PuenteError as exc:
        error = exc
    except DBAPIError as exc:
        # Lost connections and serialization failures pass; the rest is a bug to look at.
        cls = TransientError if exc.connection_invalidated or _is_transient(exc) else PuenteError
        error = cls(f"database error: {exc.orig}")
    except Exception as exc:
        log.exception("step %s of run %s crashed", step.id, run_id)
        error = PuenteError(f"unexpected error in {step.action.key}: {exc!r}")
    with sessions.begin() as s:
        _record_step(
            s,
            run_id,
            step,
            StepStatus.FAILED,
            inputs,
            None,
            error.as_dict(),
            started,
            now(),
            clock,
            waited,
        )
    raise _StepFailed(error)


def _index(s: Session, run_id: int, output: Any) -> None:
    """Keep the business keys an output names (invoice, customer) on the run, to find it."""
    if not isinstance(output, dict):
        return
    invoice = output.get("number") or output.get("invoice_id")
    customer = output.get("customer")
    tax_id = customer.get("tax_id") if isinstance(customer, dict) else output.get("tax_id")
    values = {}
    if invoice is not None and ("invoice_id" in output or "number" in output):
        values["invoice_ref"] = str(invoice)[:60]
    if isinstance(tax_id, str):
        values["customer_tax_id"] = tax_id[:30]
    if values:
        s.execute(update(Run).where(Run.id == run_id).values(**values))


def _is_transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or ""
    # 40001 serialization failure, 40P01 deadlock, 08xxx connection, 57P0x admin shutdown.
    return code.startswith(("40001", "40P01", "08", "57P0")) or "database is locked" in str(exc)


def _record_step(
    s: Session,
    run_id: int,
    step: CompiledStep,
    status: StepStatus,
    inputs: Any,
    output: Any,
    error: dict[str, Any] | None,
    started: datetime,
    finished: datetime,
    clock: float,
    waited: int | None = None,
) -> None:
    row = s.scalar(select(RunStep).where(RunStep.run_id == run_id, RunStep.step_id == step.id))
    action = step.action
    if row is None:
        row = RunStep(
            run_id=run_id, step_id=step.id, attempts=0, action_key=action.key if action else FILTER
        )
        s.add(row)
    row.status = status
    row.attempts += 1
    row.input = capped(redact(inputs, action.input_schema if action else None))
    row.output = capped(redact(output, action.output_schema if action else None))
    row.error = error
    row.started_at, row.finished_at = started, finished
    row.duration_ms = round((time.perf_counter() - clock) * 1000)
    row.queue_wait_ms = waited


def capped(value: Any, limit: int = MAX_STORED_BYTES) -> Any:
    """The value, or a marked preview when its JSON is over `limit` bytes (the log stays lean)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text.encode()) <= limit:
        return value
    return {"_truncated": True, "bytes": len(text.encode()), "preview": text[:2000]}


def _fail(
    sessions: sessionmaker[Session],
    run_id: int,
    error: PuenteError,
    attempts: int,
    now: Callable[[], datetime],
    action: ActionSpec | None = None,
) -> Outcome:
    """Retry a transient failure while the action's policy allows; then the dead-letter list."""
    transient = error.failure_class is FailureClass.TRANSIENT
    most = action.max_attempts if action else MAX_ATTEMPTS
    if transient and attempts < most:
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        base = action.backoff_base if action else BACKOFF_BASE_SECONDS
        delay = backoff_seconds(attempts, retry_after, base)
        when = now()
        with sessions.begin() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=RunStatus.QUEUED,
                    error=error.as_dict(),
                    enqueued_at=when + timedelta(seconds=delay),
                    deadline_at=when + timedelta(seconds=delay) + QUEUED_GRACE,
                )
            )
            _log_attempt(s, run_id, "retry", error.as_dict(), when)
        return Outcome("retry", delay)
    status = RunStatus.DEAD if transient else RunStatus.FAILED
    _finish(sessions, run_id, status, error.as_dict(), now())
    return Outcome(str(status))


def _finish(
    sessions: sessionmaker[Session],
    run_id: int,
    status: RunStatus,
    error: dict[str, Any] | None,
    finished: datetime,
) -> None:
    with sessions.begin() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(status=status, error=error, finished_at=finished, deadline_at=None)
        )
        _log_attempt(s, run_id, status, error, finished)


def _log_attempt(
    s: Session, run_id: int, status: str, error: dict[str, Any] | None, finished: datetime
) -> None:
    """Close the run's open attempt in its history."""
    attempt = s.scalar(
        select(RunAttempt)
        .where(RunAttempt.run_id == run_id)
        .order_by(RunAttempt.attempt.desc())
        .limit(1)
    )
    if attempt is not None and attempt.finished_at is None:
        attempt.status, attempt.error, attempt.finished_at = status, error, finished


def _queue_wait(enqueued: datetime, started: datetime) -> int:
    return max(0, round((started - enqueued).total_seconds() * 1000))
