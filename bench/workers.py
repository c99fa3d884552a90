"""Worker classes the benchmark can start besides the product's `connector.worker.Worker`.

`ForkingWorker` warms like the product's worker but forks per job, as the product did
before: kept to show what forking costs.
"""

from __future__ import annotations

import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

import rq

from connector import runtime
from connector.worker import warm


class ForkingWorker(rq.Worker):
    """The same warm-up as the product's worker, but forking a work horse per job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        warm(runtime.current())


class ProfiledWorker(ForkingWorker):
    """The forking worker, with `execute_run` profiled inside every work horse.

    Each horse writes `<pid>.prof` (cProfile) and `<pid>.json` (seconds, SQL statements, new
    database connections) into BENCH_PROFILE_DIR. Only `bench.profile_run` uses it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        profile_horses(Path(os.environ["BENCH_PROFILE_DIR"]))


def profile_horses(directory: Path) -> None:
    import sqlalchemy as sa

    import connector.jobs

    counts = {"statements": 0, "connects": 0}

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def connect(*_args: Any) -> None:
        counts["connects"] += 1

    def reset() -> None:
        counts.update(statements=0, connects=0)

    engine = runtime.current().engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "connect", connect)
    os.register_at_fork(after_in_child=reset)
    original = connector.jobs.execute_run

    def execute_run(run_id: int) -> str:
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        try:
            return original(run_id)
        finally:
            profile.disable()
            seconds = time.perf_counter() - start
            profile.dump_stats(directory / f"{os.getpid()}.prof")
            (directory / f"{os.getpid()}.json").write_text(
                json.dumps({"seconds": seconds, **counts})
            )

    connector.jobs.execute_run = execute_run
