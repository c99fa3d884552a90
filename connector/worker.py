"""The RQ worker class `make run` uses: warmed once, then every job in the same process.

Forking per job threw the warm-up away each time (a new database connection, SQLAlchemy's
mappers configured and statements compiled again): bench/README.md measured 150-250 ms of
worker CPU per run forking against 15-23 ms without. Job timeouts still apply; a worker
that dies mid-run is covered by the sweeper, like any other crash. A job that runs out of
time inside a step fails that step as transient: the run is tried again later, not failed.
"""

from __future__ import annotations

from typing import Any

import rq
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty
from sqlalchemy.orm import configure_mappers

from connector import runtime, schemas
from connector.errors import TransientError


class RunTimedOut(JobTimeoutException, TransientError):
    """A run's job ran out of time (PUENTE_RUN_TIMEOUT), most likely in a step that hung: to
    the runner a transient failure, retried later with backoff like a timeout of the step's
    own; to RQ still its timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(f"the run took longer than its time allows ({message})")


class _RunTimeout(UnixSignalDeathPenalty):
    def __init__(self, timeout: Any, exception: Any = JobTimeoutException, **kwargs: Any) -> None:
        if exception is JobTimeoutException:  # the job's own timeout, not a callback's
            exception = RunTimedOut
        super().__init__(timeout, exception, **kwargs)


class Worker(rq.SimpleWorker):
    death_penalty_class = _RunTimeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        warm(runtime.current())


def warm(rt: runtime.Runtime) -> None:
    """Build what every run needs (mappers, validators), so no job pays for it."""
    import connector.jobs  # noqa: F401  (imported by name in each job otherwise)

    configure_mappers()
    names = {"flow.json"} | {spec.output_schema for spec in rt.registry.triggers.values()}
    for action in rt.registry.actions.values():
        names |= {action.input_schema, action.output_schema}
    for name in names:
        schemas.validator(name)
        schemas.fast_validator(name)
