"""Real worker processes for tests: started with the environment a test's settings mean, and
killed for good — the RQ work horse included, which runs in a process group of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from connector.runtime import bulk_queue_name
from connector.settings import PROJECT_ROOT, Settings

T = TypeVar("T")


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, read and closed): connecting to it is
    refused until someone listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """The first truthy answer of `check`, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def worker_env(settings: Settings) -> dict[str, str]:
    """What a worker process needs to use the same database, Redis and queue as `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PUENTE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        PUENTE_SECRET_KEY=settings.secret_key,
        PUENTE_QUEUE=settings.queue_name,
        PUENTE_PUBLIC_URL=settings.public_url,
        PUENTE_INSTANCE_DIR=str(settings.instance_dir),
        PUENTE_RUN_TIMEOUT=str(settings.run_timeout_seconds),
        PUENTE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


def start_rq_worker(settings: Settings, log_path: Path, name: str) -> subprocess.Popen[bytes]:
    """`rq worker` with Puente's worker class on the settings' queue, in a session of its own."""
    rq = Path(sys.executable).parent / "rq"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(rq),
                "worker",
                "--url",
                settings.redis_url or "",
                "--worker-class",
                "connector.worker.Worker",
                "--name",
                name,
                settings.queue_name,
                bulk_queue_name(settings.queue_name),
            ],
            cwd=PROJECT_ROOT,
            env=worker_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        after = stat[stat.rindex(")") + 2 :].split()
        if int(after[1]) == pid and after[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_worker(proc: subprocess.Popen[bytes], timeout: float = 10) -> list[int]:
    """SIGKILL the worker's process group and its work horses' groups; return the horses' pids.

    RQ's forking worker puts each work horse in a process group of its own (os.setpgrp), so
    killing the worker's group alone would leave the horse running the job.
    """
    horses = children(proc.pid)
    groups = {proc.pid}
    for pid in horses:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # never our own group
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    proc.wait(timeout=timeout)
    wait_for(lambda: not any(alive(p) for p in horses), timeout, "the work horses to die")
    return horses
