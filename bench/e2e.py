"""End to end: signed "deal won" deliveries → draft invoices committed and runs logged.

For each configuration (database × worker kind × worker count) it starts the real processes
(gunicorn with 2 workers, N `rq worker`s) on loopback, on a fresh database and Redis database,
and measures:
- the baseline: K no-op RQ jobs drained by the same workers (jobs/s);
- pipelined: K signed deliveries sent from a few threads while the workers drain them; runs/s
  from the first send to the last run's finish, latency from send to finish, and the ratio
  runs/s ÷ baseline jobs/s; every invoice and run is checked;
- apart: K/2 more deliveries taken in by the web alone (workers suspended), then drained by
  the workers alone, as they drained the baseline, which is measured again right after: the
  "drain ratio" is their runs/s ÷ the mean of the two baselines;
- where the CPU went, per process, during the pipelined batch.

Run it with `make bench`. Knobs (environment):

    BENCH_DELIVERIES     deliveries per configuration (400), also the number of baseline jobs
    BENCH_FORK_DELIVERIES  the same for the forking rq.Worker comparison (80)
    BENCH_DATABASES      sqlite,postgresql
    BENCH_WORKERS        worker counts to try (1,2)
    BENCH_WORKER_KINDS   product (connector.worker.Worker: warmed, no fork per job),
                         fork (bench.workers.ForkingWorker: the same warm-up, forking per
                         job, as the product did before); default product
    BENCH_SEND_THREADS   client threads, one requests.Session each (4)
    BENCH_SEND_SECONDS   time limit for sending a batch (60)
    BENCH_DRAIN_SECONDS  time limit for a batch to finish once sent (120)
    BENCH_BUDGET_SECONDS no configuration starts after this many seconds (240)
    BENCH_REDIS_URL      redis://127.0.0.1:6379/7 (flushed before and after)
    BENCH_POSTGRES_URL   postgresql+psycopg://postgres@127.0.0.1:5432/test (a fresh schema
                         per configuration, dropped after it)
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests
import sqlalchemy as sa
from rq import Queue
from rq.job import Job
from rq.suspension import resume as rq_resume
from rq.suspension import suspend as rq_suspend
from rq.worker import Worker as RQWorker
from sqlalchemy.orm import Session, sessionmaker

from connector import migrate
from connector.models import Run, RunStatus, RunStep, StepStatus
from connector.runtime import Runtime, build_runtime
from connector.settings import PROJECT_ROOT, Settings
from connector.standard_webhooks import headers_for
from invoicing.models import Invoice
from web import demo

K = int(os.environ.get("BENCH_DELIVERIES", "400"))
K_FORK = int(os.environ.get("BENCH_FORK_DELIVERIES", "80"))
BUDGET_SECONDS = float(os.environ.get("BENCH_BUDGET_SECONDS", "240"))
DATABASES = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
WORKER_COUNTS = [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
WORKER_KINDS = os.environ.get("BENCH_WORKER_KINDS", "product").split(",")
SEND_THREADS = int(os.environ.get("BENCH_SEND_THREADS", "4"))
SEND_SECONDS = float(os.environ.get("BENCH_SEND_SECONDS", "60"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "120"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

WEB_WORKERS = 2
WARMUP_DELIVERIES = 6  # each web worker and worker process sees a delivery before timing
STARTUP_SECONDS = 60
STOP_GRACE_SECONDS = 10
# Targets of the drain ratio (workers alone ÷ no-op jobs, same workers): a run costs at most
# two no-op jobs on SQLite, 2.5 on PostgreSQL (issue #14).
DRAIN_TARGETS = {"sqlite": 0.5, "postgresql": 0.4}
BATCH_ITEMS = 100  # a HubSpot-style body: up to 100 events in one delivery
BATCHES = int(os.environ.get("BENCH_BATCHES", "4"))
RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS.md"
QUEUE = "bench-e2e"
NOOP = "bench.jobs.noop"

KINDS = {
    "product": ("connector.worker.Worker", "Worker"),
    "fork": ("bench.workers.ForkingWorker", "ForkingWorker"),
}


class BenchError(Exception):
    """A configuration could not be measured or its result is wrong: fail loudly."""


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """Have Linux send SIGTERM to the child if this benchmark dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """Children in their own process groups, stopped with SIGTERM then SIGKILL."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.log_dir / f"{name}.log").open("wb") as out:
            child = subprocess.Popen(
                argv,
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.children.append((name, child))

    def check(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                raise BenchError(f"{name} exited with {child.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM each child's process group, SIGKILL what is left after the grace period.

        RQ's work horses run in sessions of their own (setsid), so every descendant found now
        is killed too if it outlives the grace period.
        """
        descendants = _descendants({child.pid for _, child in self.children})
        for _, child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} ignored SIGTERM for {STOP_GRACE_SECONDS} s: SIGKILL")
            # The group too: a gunicorn worker may outlive its parent.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            if child.poll() is None:
                child.wait()
        for pid, started in descendants.items():
            if _start_time(pid) == started:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.children.clear()


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _descendants(roots: set[int]) -> dict[int, int]:
    """pid → start time of every process below `roots`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return {pid: t for pid in found if (t := _start_time(pid)) is not None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- databases


class SqliteDatabase:
    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path: Path | None = None

    def create(self, slug: str) -> str:
        self.path = self.directory / f"{slug}.db"
        return f"sqlite:///{self.path}"

    def drop(self) -> None:
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.path = None


class PostgresDatabase:
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
        self.schema: str | None = None

    def reachable(self) -> str | None:
        """None when it answers, else why not."""
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            return str(exc.orig).strip().splitlines()[0]
        return None

    def create(self, slug: str) -> str:
        self.schema = f"puente_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.schema is None:
            return
        try:
            with self.admin.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '15s'"))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        except sa.exc.DBAPIError as exc:
            print(f"  !! could not drop schema {self.schema}: {exc.orig}; drop it by hand")
        self.schema = None

    def close(self) -> None:
        self.admin.dispose()


Database = SqliteDatabase | PostgresDatabase
Probe = sessionmaker[Session]  # the benchmark's own reads


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Delivery:
    deal_id: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    started: float  # wall clock, comparable with the times workers store
    answered: float
    status: int
    text: str

    @property
    def run_ids(self) -> list[int]:
        if self.status not in (200, 202):
            return []
        return list(json.loads(self.text).get("run_ids", []))


def deliveries(secret: str, prefix: str, count: int) -> list[Delivery]:
    """Signed deliveries of the sample deal, each with its own deal id (built before timing)."""
    made = []
    now = int(time.time())
    for i in range(count):
        deal_id = f"{prefix}-{i:05d}"
        body = json.dumps(demo.sample_deal(deal_id), ensure_ascii=False).encode()
        headers = headers_for(secret, f"msg_{uuid.uuid4().hex}", now, body)
        made.append(Delivery(deal_id, body, {**headers, "Content-Type": "application/json"}))
    return made


def batched(secret: str, prefix: str, count: int, size: int) -> list[Delivery]:
    """Signed deliveries of `size` deals each (a JSON list, as a CRM batches its events)."""
    made = []
    now = int(time.time())
    for i in range(count):
        deals = [demo.sample_deal(f"{prefix}-{i:03d}-{j:03d}") for j in range(size)]
        body = json.dumps(deals, ensure_ascii=False).encode()
        headers = headers_for(secret, f"msg_{uuid.uuid4().hex}", now, body)
        made.append(
            Delivery(f"{prefix}-{i:03d}", body, {**headers, "Content-Type": "application/json"})
        )
    return made


def send_all(url: str, batch: Sequence[Delivery], threads: int, seconds: float) -> list[Sent]:
    """POST every delivery from `threads` threads (a Session each), until done or time is up."""
    results: list[Sent | None] = [None] * len(batch)
    lock = threading.Lock()
    cursor = iter(range(len(batch)))
    deadline = time.monotonic() + seconds

    def loop() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    i = next(cursor, None) if time.monotonic() < deadline else None
                if i is None:
                    return
                d = batch[i]
                started = time.time()
                try:
                    r = session.post(url, data=d.body, headers=d.headers, timeout=30)
                    status, text = r.status_code, r.text
                except requests.RequestException as exc:
                    status, text = 0, repr(exc)
                results[i] = Sent(d, started, time.time(), status, text)

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=max(0.1, deadline - time.monotonic()) + 35)
    return [s for s in results if s is not None]


def wait_until(
    check: Callable[[], bool], seconds: float, what: str, procs: Processes, every: float = 0.2
) -> None:
    """Poll (times come from the database and Redis, so the interval does not bias them)."""
    deadline = time.monotonic() + seconds
    while not check():
        procs.check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(every)


def runs_pending(probe: Probe) -> int:
    with probe() as s:
        return int(
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Run)
                .where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
            )
            or 0
        )


def redis_commands(r: redis.Redis) -> int:
    """Commands the whole server has processed (other clients of it count too)."""
    return int(r.info("stats")["total_commands_processed"])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPU_ROLES = ("client", "web", "workers", "db", "redis", "other", "idle")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far: per process group, the Redis server, this process, the machine."""

    groups: defaultdict[int, float]
    own: dict[int, float]  # pid → its own CPU seconds
    redis: float
    client: float
    busy: float  # every CPU of the machine, any process
    idle: float

    @classmethod
    def take(cls, redis_pid: int | None) -> CpuSample:
        groups: defaultdict[int, float] = defaultdict(float)
        own: dict[int, float] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            # utime + stime, plus cutime + cstime: forked work horses once reaped.
            seconds = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS
            groups[int(fields[2])] += seconds
            own[int(entry.name)] = sum(int(fields[i]) for i in (11, 12)) / CLOCK_TICKS
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open("/proc/stat") as f:
            cpu = [int(v) / CLOCK_TICKS for v in f.readline().split()[1:]]
        idle = cpu[3] + cpu[4]  # idle + iowait
        redis_seconds = own.get(redis_pid or -1, 0.0)
        client = usage.ru_utime + usage.ru_stime
        return cls(groups, own, redis_seconds, client, sum(cpu) - idle, idle)


def cpu_per_delivery(
    before: CpuSample, after: CpuSample, procs: Processes, n: int, db_pids: set[int]
) -> dict[str, float]:
    """Milliseconds of CPU per delivery, by role. `db`: the PostgreSQL backends serving our
    processes (those alive at the end; SQLite works inside web and workers); `other`: the rest
    of the machine, other users included; `idle`: what no process used."""

    def group(names: Callable[[str], bool]) -> float:
        return sum(
            after.groups[child.pid] - before.groups[child.pid]
            for name, child in procs.children
            if names(name)
        )

    used = {
        "client": after.client - before.client,
        "web": group(lambda name: name == "web"),
        "workers": group(lambda name: name.startswith("worker")),
        "db": sum(after.own.get(pid, 0.0) - before.own.get(pid, 0.0) for pid in db_pids),
        "redis": after.redis - before.redis,
    }
    used["other"] = max(0.0, (after.busy - before.busy) - sum(used.values()))
    used["idle"] = after.idle - before.idle
    return {role: seconds * 1000 / n for role, seconds in used.items()}


# ---------------------------------------------------------------- one configuration


@dataclass
class Result:
    database: str
    kind: str
    workers: int
    sent: int
    runs_per_s: float
    p50: float
    p95: float
    p99: float
    trivial_per_s: float
    trivial_after_per_s: float  # the baseline again, right after the workers alone drained
    intake_per_s: float  # deliveries/s the web takes in while no worker runs
    drain_per_s: float  # runs/s the workers drain from a full queue while the web is idle
    ack_p50: float  # HTTP answer
    wait_p50: float  # queued → started
    exec_p50: float  # started → finished
    cmds_per_trivial: float
    cmds_per_run: float
    cpu: dict[str, float]  # ms of CPU per delivery, by role (CPU_ROLES)
    batch_items_per_s: float  # items the web takes in, sent 100 to a delivery
    rss_mb: dict[str, float]  # peak resident memory of one process, by role (web, workers)

    @property
    def ratio(self) -> float:
        return self.runs_per_s / self.trivial_per_s

    @property
    def drain_ratio(self) -> float:
        """Against the baseline before and after (the machine's speed drifts meanwhile)."""
        return self.drain_per_s / statistics.mean((self.trivial_per_s, self.trivial_after_per_s))

    @property
    def drain_target(self) -> float:
        return DRAIN_TARGETS[self.database]

    @property
    def batch_ratio(self) -> float:
        return self.batch_items_per_s / self.intake_per_s

    @property
    def label(self) -> str:
        return f"{self.database} {self.workers}× {KINDS[self.kind][1]}"


def measure_trivial(
    rt: Runtime, r: redis.Redis, k: int, procs: Processes, name: str = "noop"
) -> tuple[float, float]:
    """Enqueue k no-op jobs in one pipeline, as intake does; jobs/s until the last one ended."""
    queue = rt.queue
    finished = queue.finished_job_registry
    failed = queue.failed_job_registry
    ids = [f"{name}-{i}" for i in range(k)]
    jobs = [
        Queue.prepare_data(
            NOOP,
            args=(i,),
            job_id=job_id,
            timeout=rt.settings.run_timeout_seconds,
            result_ttl=3600,
            failure_ttl=7 * 86400,
        )
        for i, job_id in enumerate(ids)
    ]
    before = finished.count
    commands = redis_commands(r)
    started = time.time()
    with r.pipeline() as pipe:
        queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()

    def drained() -> bool:
        if failed.count:
            raise BenchError(f"{failed.count} baseline job(s) failed: see the worker logs")
        return finished.count - before >= k

    wait_until(drained, DRAIN_SECONDS, f"{k} baseline jobs", procs)
    commands = redis_commands(r) - commands
    ended = [j.ended_at for j in Job.fetch_many(ids, connection=r) if j and j.ended_at]
    if len(ended) != k:
        raise BenchError(f"only {len(ended)} of {k} baseline jobs have an end time")
    return k / (max(e.timestamp() for e in ended) - started), commands / k


def verify(probe: Probe, sent: Sequence[Sent], run_ids: list[int], total_deliveries: int) -> None:
    """Exactly one succeeded run, two logged steps and one draft invoice per delivery."""
    n = len(sent)
    deal_ids = [s.delivery.deal_id for s in sent]
    with probe() as s:
        statuses = Counter(s.scalars(sa.select(Run.status).where(Run.id.in_(run_ids))).all())
        steps = s.scalar(
            sa.select(sa.func.count())
            .select_from(RunStep)
            .where(RunStep.run_id.in_(run_ids), RunStep.status == StepStatus.SUCCEEDED)
        )
        invoices, distinct = s.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(Invoice.external_ref))).where(
                Invoice.external_ref.in_(deal_ids)
            )
        ).one()
        all_invoices = s.scalar(sa.select(sa.func.count()).select_from(Invoice))
        all_runs = s.scalar(sa.select(sa.func.count()).select_from(Run))
        first_error = s.scalar(
            sa.select(Run.error).where(Run.id.in_(run_ids), Run.status != RunStatus.SUCCEEDED)
        )
    problems = []
    if statuses.get(RunStatus.SUCCEEDED, 0) != n:
        problems.append(f"run statuses {dict(statuses)} (first error: {first_error})")
    if steps != 2 * n:
        problems.append(f"{steps} succeeded steps logged, expected {2 * n}")
    if invoices != n or distinct != n:
        problems.append(f"{invoices} invoices for {distinct} of the {n} deals sent")
    if all_invoices != total_deliveries or all_runs != total_deliveries:
        problems.append(
            f"{all_invoices} invoices and {all_runs} runs in the database for "
            f"{total_deliveries} deliveries"
        )
    if problems:
        raise BenchError("wrong result: " + "; ".join(problems))


def backends(probe: Probe, tag: str) -> set[int]:
    """PostgreSQL server processes serving connections our children opened."""
    with probe() as s:
        return set(
            s.scalars(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :tag"),
                {"tag": tag},
            )
        )


def deliver(
    url: str, batch: Sequence[Delivery], probe: Probe | None, procs: Processes
) -> list[Sent]:
    """Send the batch; every delivery must be accepted with one run. With a probe, wait for
    the runs to finish too."""
    sent = send_all(url, batch, SEND_THREADS, SEND_SECONDS)
    bad = [s for s in sent if s.status != 202 or len(s.run_ids) != 1]
    if bad:
        raise BenchError(
            f"{len(bad)} of {len(sent)} deliveries not accepted; first: "
            f"{bad[0].status} {bad[0].text[:300]}"
        )
    if not sent:
        raise BenchError("no delivery was sent")
    if len(sent) < len(batch):
        print(f"  note: the {SEND_SECONDS:.0f} s send limit stopped at {len(sent)} of {len(batch)}")
    if probe is not None:
        wait_until(
            lambda: runs_pending(probe) == 0, DRAIN_SECONDS, f"{len(sent)} runs to finish", procs
        )
    return sent


def run_times(probe: Probe, run_ids: list[int]) -> list[tuple[int, float, float, float]]:
    """(id, created, started, finished) as Unix times, for finished runs."""
    with probe() as s:
        rows = s.execute(
            sa.select(Run.id, Run.created_at, Run.started_at, Run.finished_at).where(
                Run.id.in_(run_ids)
            )
        ).all()
    return [(rid, _ts(cr), _ts(st), _ts(fin)) for rid, cr, st, fin in rows]


def memory_mb(procs: Processes, field: str = "VmHWM") -> dict[str, float]:
    """The largest `field` of /proc/<pid>/status (VmHWM: peak resident memory, VmRSS: now) of
    one process in each role's process groups (gunicorn's master and its workers are the
    web's), in MB."""
    groups = {child.pid: ("web" if name == "web" else "workers") for name, child in procs.children}
    found: dict[str, float] = {"web": 0.0, "workers": 0.0}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        role = groups.get(int(stat[stat.rindex(")") + 2 :].split()[2]))
        if role is None:
            continue
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                found[role] = max(found[role], int(line.split()[1]) / 1024)
    return found


class Stack:
    """One configuration's processes on a fresh database, warmed up: the web (gunicorn) and
    `workers` RQ workers of `kind`, the demo flow's signed hook, and our own reads (probe)."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.rt: Runtime | None = None
        self.probe_engine: sa.Engine | None = None
        self.probe: Probe = sessionmaker()
        self.hook_url = self.secret = self.tag = ""

    def start(
        self, db: Database, kind: str, workers: int, slug: str, tmp: Path, r: redis.Redis
    ) -> None:
        procs = self.procs
        url = db.create(slug)
        migrate.upgrade(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            secret_key=secrets.token_urlsafe(32),
            instance_dir=tmp,
            queue_name=QUEUE,
            public_url=base,
            log_level="WARNING",
        )
        self.rt = rt = build_runtime(settings)
        # Reads of our own, on a plain engine: no BEGIN IMMEDIATE (the write lock) on SQLite.
        self.probe_engine = sa.create_engine(url)
        self.probe = probe = sessionmaker(self.probe_engine)
        with rt.sessions.begin() as s:
            hook, secret = demo.ensure_demo(s, rt.secrets, rt.registry)
            self.hook_url = f"{base}/hooks/{hook.token}"
            self.secret = secret

        env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
        self.tag = tag = (
            f"puente-bench-{os.getpid()}"  # finds our PostgreSQL backends for the CPU table
        )
        child_url = url
        if db.name == "postgresql":
            child_url += ("&" if "?" in url else "?") + f"application_name={tag}"
        env.update(
            DATABASE_URL=child_url,
            REDIS_URL=REDIS_URL,
            PUENTE_SECRET_KEY=settings.secret_key,
            PUENTE_QUEUE=QUEUE,
            # One integration is the whole load here: no budget, no bulk queue (connector.pace).
            PUENTE_ITEMS_PER_MINUTE="0",
            PUENTE_BULK_AFTER_ITEMS="0",
            PUENTE_LOG_LEVEL="WARNING",
            PUENTE_PUBLIC_URL=base,
            PUENTE_INSTANCE_DIR=str(tmp),
            PYTHONPATH=str(PROJECT_ROOT),
        )
        bin_dir = Path(sys.executable).parent
        procs.start(
            "web",
            [
                str(bin_dir / "gunicorn"),
                "web.wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(WEB_WORKERS),
                "--graceful-timeout",
                "5",
            ],
            env,
        )
        for i in range(workers):
            procs.start(
                f"worker-{i}",
                [
                    str(bin_dir / "rq"),
                    "worker",
                    "--url",
                    REDIS_URL,
                    "--worker-class",
                    KINDS[kind][0],
                    "--with-scheduler",
                    "--name",
                    f"bench-{os.getpid()}-{slug}-{i}",
                    "--logging_level",
                    "WARNING",
                    QUEUE,
                ],
                env,
            )

        def ready() -> bool:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code != 200:
                    return False
            except requests.RequestException:
                return False
            return RQWorker.count(connection=r, queue=rt.queue) >= workers

        wait_until(ready, STARTUP_SECONDS, "the web server and the workers", procs)

        warm = send_all(self.hook_url, deliveries(secret, f"WARM-{slug}", WARMUP_DELIVERIES), 2, 30)
        if len(warm) != WARMUP_DELIVERIES or any(s.status != 202 for s in warm):
            raise BenchError(f"warm-up deliveries not accepted: {[s.status for s in warm]}")
        wait_until(lambda: runs_pending(probe) == 0, DRAIN_SECONDS, "the warm-up runs", procs)

    def close(self) -> None:
        self.procs.stop()
        if self.rt is not None:
            self.rt.close()
        if self.probe_engine is not None:
            self.probe_engine.dispose()


def run_config(db: Database, kind: str, workers: int, k: int, tmp: Path, r: redis.Redis) -> Result:
    slug = f"{db.name}-{kind}-{workers}"
    r.flushdb()
    procs = Processes(tmp / slug)
    stack = Stack(procs)
    try:
        stack.start(db, kind, workers, slug, tmp, r)
        assert stack.rt is not None
        rt, probe, tag = stack.rt, stack.probe, stack.tag
        hook_url, secret = stack.hook_url, stack.secret

        trivial_per_s, cmds_per_trivial = measure_trivial(rt, r, k, procs)

        # 1. Pipelined: workers drain while the web takes the deliveries in.
        commands = redis_commands(r)
        redis_pid = int(r.info("server").get("process_id", 0)) or None
        db_pids = backends(probe, tag) if db.name == "postgresql" else set()
        cpu_before = CpuSample.take(redis_pid)
        sent = deliver(hook_url, deliveries(secret, f"BENCH-{slug}", k), probe, procs)
        cpu_after = CpuSample.take(redis_pid)
        if db.name == "postgresql":
            db_pids |= backends(probe, tag)
        cpu = cpu_per_delivery(cpu_before, cpu_after, procs, len(sent), db_pids)
        cmds_per_run = (redis_commands(r) - commands) / len(sent)
        sent_at = {s.run_ids[0]: s for s in sent}
        run_ids = list(sent_at)
        total = WARMUP_DELIVERIES + len(sent)
        verify(probe, sent, run_ids, total)
        rows = run_times(probe, run_ids)
        finished = {rid: fin for rid, _, _, fin in rows}
        latencies = [(finished[rid] - sent_at[rid].started) * 1000 for rid in run_ids]
        first = min(s.started for s in sent)

        # 2. Apart: the web alone takes k/2 deliveries in while the workers are suspended,
        # then the workers alone drain them, as they drained the baseline jobs.
        rq_suspend(r)
        try:
            split = deliver(hook_url, deliveries(secret, f"SPLIT-{slug}", k // 2), None, procs)
        finally:
            rq_resume(r)
        resumed = time.time()
        wait_until(lambda: runs_pending(probe) == 0, DRAIN_SECONDS, "the split batch", procs)
        split_ids = [s.run_ids[0] for s in split]
        verify(probe, split, split_ids, total + len(split))
        # A worker blocked in its dequeue when suspended takes one job before it pauses.
        drained = [(st, fin) for _, _, st, fin in run_times(probe, split_ids) if st >= resumed]
        if len(drained) < len(split) // 2:
            raise BenchError(f"only {len(drained)} of {len(split)} runs waited for the resume")
        total += len(split)
        trivial_after_per_s, _ = measure_trivial(rt, r, k, procs, "noop-after")

        # 3. Batches: the web alone takes deliveries of 100 deals each, as a CRM batches them.
        rq_suspend(r)
        try:
            bodies = batched(secret, f"BATCH-{slug}", BATCHES, BATCH_ITEMS)
            taken = send_all(hook_url, bodies, SEND_THREADS, SEND_SECONDS)
        finally:
            rq_resume(r)
        if len(taken) != len(bodies) or any(len(t.run_ids) != BATCH_ITEMS for t in taken):
            raise BenchError(f"batches not accepted whole: {[t.status for t in taken]}")
        batch_items_per_s = (
            BATCH_ITEMS
            * len(taken)
            / (max(t.answered for t in taken) - min(t.started for t in taken))
        )
        wait_until(lambda: runs_pending(probe) == 0, DRAIN_SECONDS, "the batched runs", procs)
        with probe() as s:
            outcome = Counter(s.scalars(sa.select(Run.status)).all())
        if outcome != {RunStatus.SUCCEEDED: total + BATCHES * BATCH_ITEMS}:
            raise BenchError(f"after the batches, runs {dict(outcome)}")
        rss = memory_mb(procs)

        return Result(
            database=db.name,
            kind=kind,
            workers=workers,
            sent=len(sent),
            runs_per_s=len(sent) / (max(finished.values()) - first),
            p50=percentile(latencies, 50),
            p95=percentile(latencies, 95),
            p99=percentile(latencies, 99),
            trivial_per_s=trivial_per_s,
            trivial_after_per_s=trivial_after_per_s,
            intake_per_s=len(split)
            / (max(s.answered for s in split) - min(s.started for s in split)),
            drain_per_s=len(drained)
            / (max(fin for _, fin in drained) - min(st for st, _ in drained)),
            ack_p50=statistics.median((s.answered - s.started) * 1000 for s in sent),
            wait_p50=statistics.median((st - cr) * 1000 for _, cr, st, _ in rows),
            exec_p50=statistics.median((fin - st) * 1000 for _, _, st, fin in rows),
            cmds_per_trivial=cmds_per_trivial,
            cmds_per_run=cmds_per_run,
            cpu=cpu,
            batch_items_per_s=batch_items_per_s,
            rss_mb=rss,
        )
    except BenchError as exc:
        raise BenchError(f"{slug}: {exc}\n  (process logs in {procs.log_dir})") from None
    finally:
        stack.close()
        db.drop()


def _ts(value: datetime | None) -> float:
    if value is None:
        raise BenchError("a finished run has no start or finish time")
    return value.timestamp()


# ---------------------------------------------------------------- report


def table(results: Sequence[Result]) -> str:
    head = (
        f"{'config':<28} {'runs/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'trivial/s':>9} {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for x in results:
        lines.append(
            f"{x.label:<28} {x.runs_per_s:>7.1f} {x.p50:>7.0f} {x.p95:>7.0f} {x.p99:>7.0f} "
            f"{x.trivial_per_s:>9.1f} {x.ratio:>6.2f}"
        )
    return "\n".join(lines)


def split_table(results: Sequence[Result]) -> str:
    head = (
        f"{'config':<28} {'web alone':>9} {'workers alone':>13} {'trivial/s':>9} {'':>6} "
        f"{'drain ratio':>11}  target"
    )
    lines = [
        head,
        f"{'':<28} {'deliv./s':>9} {'runs/s':>13} {'before':>9} {'after':>6}",
        "-" * len(head),
    ]
    for x in results:
        met = "met" if x.drain_ratio >= x.drain_target else "NOT met"
        lines.append(
            f"{x.label:<28} {x.intake_per_s:>9.1f} {x.drain_per_s:>13.1f} "
            f"{x.trivial_per_s:>9.1f} {x.trivial_after_per_s:>6.0f} "
            f"{x.drain_ratio:>11.2f}  ≥ {x.drain_target} {met}"
        )
    return "\n".join(lines)


def breakdown(results: Sequence[Result]) -> str:
    head = (
        f"{'config':<28} {'HTTP ack':>8} {'queued':>7} {'execute':>7} |"
        + "".join(f" {role:>7}" for role in CPU_ROLES)
        + f" | {'cmds/job':>8} {'cmds/run':>8}"
    )
    lines = [head, "-" * len(head)]
    for x in results:
        lines.append(
            f"{x.label:<28} {x.ack_p50:>8.1f} {x.wait_p50:>7.0f} {x.exec_p50:>7.1f} |"
            + "".join(f" {x.cpu[role]:>7.1f}" for role in CPU_ROLES)
            + f" | {x.cmds_per_trivial:>8.0f} {x.cmds_per_run:>8.0f}"
        )
    return "\n".join(lines)


def extras_table(results: Sequence[Result]) -> str:
    head = (
        f"{'config':<28} {'batched items/s':>15} {'÷ single/s':>10} | "
        f"{'peak RSS web':>12} {'workers':>8}  (MB, one process; target < 150)"
    )
    lines = [head, "-" * len(head)]
    for x in results:
        lines.append(
            f"{x.label:<28} {x.batch_items_per_s:>15.0f} {x.batch_ratio:>10.1f} | "
            f"{x.rss_mb['web']:>12.0f} {x.rss_mb['workers']:>8.0f}"
        )
    return "\n".join(lines)


def write_results(results: Sequence[Result], cpus: int) -> None:
    """bench/RESULTS.md: what this run measured, with the machine and versions, in the tables
    printed; the sections other benchmarks add (growth) are kept below the marker."""
    import platform

    import psycopg
    import rq as rq_module

    marker = "<!-- end of make bench -->"
    kept = ""
    if RESULTS_FILE.exists():
        old = RESULTS_FILE.read_text()
        kept = old.split(marker, 1)[1] if marker in old else ""
    versions = (
        f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, RQ "
        f"{rq_module.__version__}, redis-py {redis.__version__}, psycopg {psycopg.__version__}, "
        f"SQLite {sqlite_version()}"
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `make bench` (bench/e2e.py) on {when}: "
            f"{platform.machine()}, {cpus} CPU(s), {platform.platform()}; {versions}; "
            f"{K} deliveries per configuration, {BATCHES} batches of {BATCH_ITEMS}. Figures move "
            "by ±30 % between runs on 2 shared cores: read the ratios, each measured against a "
            "baseline in the same run.",
            "",
            "## End to end (web and workers together)",
            "",
            "```",
            table(results),
            "```",
            "",
            "## Drain ratio (workers alone ÷ no-op RQ jobs, same workers, before and after)",
            "",
            "```",
            split_table(results),
            "```",
            "",
            "## Batches and memory",
            "",
            "```",
            extras_table(results),
            "```",
            "",
            "## Where the time goes",
            "",
            "```",
            breakdown(results),
            "```",
            "",
            marker,
        ]
    )
    RESULTS_FILE.write_text(text + kept)


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the benchmark and cleans up, even when started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    unknown = [kind for kind in WORKER_KINDS if kind not in KINDS]
    if unknown:
        print(f"unknown BENCH_WORKER_KINDS {unknown}: use {', '.join(KINDS)}", file=sys.stderr)
        return 2
    cpus = os.cpu_count() or 1
    print(
        f"Puente end-to-end benchmark: {K} deliveries per configuration ({K_FORK} with the "
        f"forking Worker), as many baseline jobs; {cpus} CPU(s)\n"
        f"Redis {REDIS_URL}; every process on this machine, loopback only.\n"
        "Figures are noisy on 2 cores (client, web, workers and databases share them): "
        "read the ratios.\n",
        flush=True,
    )
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        r.ping()
    except redis.RedisError as exc:
        print(f"Redis is not reachable at {REDIS_URL}: {exc}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="puente-bench-"))
    results: list[Result] = []
    failures: list[str] = []
    skipped: list[str] = []
    databases: list[Database] = []
    code = 0
    started = time.monotonic()
    try:
        r.flushdb()
        for name in DATABASES:
            if name == "sqlite":
                databases.append(SqliteDatabase(tmp))
            elif name == "postgresql":
                pg = PostgresDatabase(POSTGRES_URL)
                why = pg.reachable()
                if why is None:
                    databases.append(pg)
                else:
                    pg.close()
                    print(f"note: PostgreSQL skipped, not reachable at {POSTGRES_URL}: {why}\n")
            else:
                raise SystemExit(f"unknown database {name!r} in BENCH_DATABASES")
        for db in databases:
            for kind in WORKER_KINDS:
                for n in WORKER_COUNTS:
                    t0 = time.monotonic()
                    if t0 - started > BUDGET_SECONDS:
                        skipped.append(f"{db.name} {n}× {KINDS[kind][1]}")
                        continue
                    try:
                        k = K_FORK if kind == "fork" else K
                        result = run_config(db, kind, n, k, tmp, r)
                    except BenchError as exc:
                        failures.append(str(exc))
                        print(f"FAILED {exc}", flush=True)
                        continue
                    results.append(result)
                    print(
                        f"  {result.label:<28} {result.runs_per_s:6.1f} runs/s, "
                        f"baseline {result.trivial_per_s:6.1f} jobs/s, "
                        f"ratio {result.ratio:.2f}, drain ratio {result.drain_ratio:.2f}  "
                        f"({time.monotonic() - t0:.0f} s)",
                        flush=True,
                    )
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process and cleaning up", file=sys.stderr)
        code = 130
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        with contextlib.suppress(redis.RedisError):
            r.flushdb()
        r.close()
        for db in databases:
            if isinstance(db, PostgresDatabase):
                db.close()
        if failures:
            print(f"process logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, previous)

    if results:
        print(f"\n{table(results)}\n")
        print(
            "The same, apart: the web alone takes k/2 deliveries in (workers suspended), then "
            "the workers alone drain them\n(web idle), as they drained the baseline jobs; "
            "drain ratio = workers-alone runs/s ÷ trivial jobs/s (mean of the baseline before\n"
            "the configuration and the one right after the drain)."
        )
        print(f"{split_table(results)}\n")
        print(
            "Where the time goes: medians in ms (HTTP answer, queued → started, started → "
            "finished);\nCPU ms per delivery by process (db = PostgreSQL backends serving us; "
            "other = anything else on the machine,\nother users included; idle = unused); Redis "
            "commands per baseline job and per run (counted server-wide)."
        )
        print(f"{breakdown(results)}\n")
        print(
            "Batches: items/s the web alone takes in sent 100 to a delivery, ÷ deliveries/s of "
            "one item (web alone, above);\npeak resident memory of the largest web and worker "
            "process (VmHWM) over the whole configuration."
        )
        print(f"{extras_table(results)}\n")
        write_results(results, cpus)
        print(f"written to {RESULTS_FILE.relative_to(PROJECT_ROOT)}")
        print(
            f"{cpus} CPU(s); figures are noisy on 2 cores: compare ratios, not absolute "
            f"numbers. Latency is measured from the POST to the run's finished_at; the batch "
            f"is sent as fast as the web answers, so it mostly measures the backlog. "
            f"Total {time.monotonic() - started:.0f} s."
        )
    if skipped:
        print(
            f"\nnot measured, the {BUDGET_SECONDS:.0f} s budget (BENCH_BUDGET_SECONDS) was spent: "
            + ", ".join(skipped)
        )
    for failure in failures:
        print(f"\nFAILED {failure}", file=sys.stderr)
    if failures:
        code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
