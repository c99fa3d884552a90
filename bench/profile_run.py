"""Where a run's time goes, in one process: cProfile, SQL statements, transactions, Redis calls.

    .venv/bin/python -m bench.profile_run [--db sqlite|postgresql] [--runs 200]
        [--fork-runs 40] [--top 25]

On a fresh database (SQLite file or PostgreSQL schema, dropped after) with the demo flow, it
- sends the deliveries through the Flask app (test client, no HTTP) and counts per delivery;
- drains a no-op baseline and the runs with an in-process SimpleWorker (burst), timing both,
  then times the runner's parts, then profiles intake and runs (separate batches: the
  profiler's own overhead stays out of the timings);
- starts the product's forking worker as a process (`rq worker --burst` with
  `bench.workers.ProfiledWorker`, warmed like `connector.worker.Worker` and nothing more) to
  drain no-op jobs and then runs, profiling `execute_run` inside each work horse, which is
  where a forked job spends its time.
It uses the Redis database of BENCH_REDIS_URL (7), flushed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import redis
import redis.client
import rq
import sqlalchemy as sa
from rq import Queue
from rq.job import Job

import connector.jobs
from bench.e2e import (
    NOOP,
    POSTGRES_URL,
    REDIS_URL,
    PostgresDatabase,
    SqliteDatabase,
    deliveries,
)
from connector import migrate, runner, runtime, schemas
from connector.models import Run, RunStatus
from connector.runtime import build_runtime
from connector.settings import PROJECT_ROOT, Settings
from connector.worker import warm
from web import create_app, demo


class Counters:
    """SQL statements, transactions and connections on an engine; Redis calls in this process."""

    def __init__(self, engine: sa.Engine) -> None:
        self.sql: Counter[str] = Counter()
        self.commits = 0
        self.connects = 0
        self.redis_calls = 0  # round trips
        self.redis_commands: Counter[str] = Counter()
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "connect", self._connect)
        self._patch_redis()

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.sql[statement.split(None, 1)[0].upper()] += 1

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _connect(self, *_args: Any) -> None:
        self.connects += 1

    def _patch_redis(self) -> None:
        counters = self
        execute_command = redis.Redis.execute_command
        pipeline_execute = redis.client.Pipeline.execute

        def counted_command(client: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(client, redis.client.Pipeline):
                counters.redis_calls += 1
                counters.redis_commands[str(args[0]).upper()] += 1
            return execute_command(client, *args, **kwargs)

        def counted_pipeline(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            if pipe.command_stack:
                counters.redis_calls += 1
                for command, _ in pipe.command_stack:
                    counters.redis_commands[str(command[0]).upper()] += 1
            return pipeline_execute(pipe, *args, **kwargs)

        redis.Redis.execute_command = counted_command  # type: ignore[method-assign,assignment]
        redis.client.Pipeline.execute = counted_pipeline  # type: ignore[method-assign,assignment]

    def snapshot(self) -> dict[str, Any]:
        return {
            "sql": Counter(self.sql),
            "commits": self.commits,
            "connects": self.connects,
            "redis_calls": self.redis_calls,
            "redis_commands": Counter(self.redis_commands),
        }

    def since(self, before: dict[str, Any], n: int) -> str:
        now = self.snapshot()
        sql = now["sql"] - before["sql"]
        cmds = now["redis_commands"] - before["redis_commands"]
        top = ", ".join(f"{k} {v / n:.1f}" for k, v in cmds.most_common(8))
        return (
            f"SQL statements {sum(sql.values()) / n:.1f} "
            f"({', '.join(f'{k} {v / n:.1f}' for k, v in sorted(sql.items()))}); "
            f"commits {(now['commits'] - before['commits']) / n:.1f}; "
            f"new connections {(now['connects'] - before['connects']) / n:.2f}; "
            f"Redis round trips {(now['redis_calls'] - before['redis_calls']) / n:.1f}, "
            f"commands {sum(cmds.values()) / n:.1f} ({top})"
        )


def profiled(profile: cProfile.Profile, top: int, sort: str = "cumulative") -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


class Segments:
    """Wall time spent in the runner's parts (no profiler: its overhead would distort them)."""

    def __init__(self, rt: runtime.Runtime) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.patches: list[tuple[Any, str, Any, str]] = []
        self._wrap(runner, "claim_runs", "claim (UPDATE … RETURNING, INSERT attempt, commit)")
        self._wrap(runner._Attempt, "run", "steps (map, validate, act, log)")
        self._wrap(runner, "_finish", "finish (UPDATE run and attempt)")
        self._wrap(runner, "_record_step", "  record step (redact; its row is written later)")
        self._wrap(schemas, "validate", "  schema validation (4 per run)")
        for key, action in rt.registry.actions.items():
            self._wrap(action, "perform", f"  perform {key}")

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start

        self._set(owner, name, timed)
        self.patches.append((owner, name, original, label))

    def undo(self) -> None:
        for owner, name, original, _ in reversed(self.patches):
            self._set(owner, name, original)

    @staticmethod
    def _set(owner: Any, name: str, value: Any) -> None:
        # Actions are frozen dataclasses: object.__setattr__ gets past that; classes use setattr.
        (setattr if isinstance(owner, type) else object.__setattr__)(owner, name, value)

    def report(self, total: float, n: int) -> str:
        rows = [f"   {'execute_run, total':<44} {total / n * 1000:6.2f} ms"]
        labels = [label for _, _, _, label in self.patches]
        rows += [
            f"   {label:<44} {self.seconds[label] / n * 1000:6.2f} ms"
            for label in labels
            if self.seconds[label] / n >= 0.00005
        ]
        return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_run", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fork-runs", type=int, default=40)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    n = args.runs

    tmp = Path(tempfile.mkdtemp(prefix="puente-profile-"))
    db = SqliteDatabase(tmp) if args.db == "sqlite" else PostgresDatabase(POSTGRES_URL)
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    try:
        url = db.create("profile")
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            secret_key=secrets.token_urlsafe(32),
            instance_dir=tmp,
            queue_name="bench-profile",
            log_level="WARNING",
        )
        rt = build_runtime(settings)
        runtime.install(rt)
        warm(rt)
        with rt.sessions.begin() as s:
            hook, secret = demo.ensure_demo(s, rt.secrets, rt.registry)
            path = f"/hooks/{hook.token}"
        counters = Counters(rt.engine)
        client = create_app(runtime=rt).test_client()

        def post(prefix: str, count: int, profile: cProfile.Profile | None = None) -> list[int]:
            """Deliver `count` deals; hold their jobs back (drained explicitly below)."""
            batch = deliveries(secret, prefix, count)
            if profile:
                profile.enable()
            for d in batch:
                answer = client.post(path, data=d.body, headers=d.headers)
                assert answer.status_code == 202, answer.get_data(as_text=True)
            if profile:
                profile.disable()
            r.delete(rt.queue.key)
            with rt.sessions() as s:
                return list(s.scalars(sa.select(Run.id).where(Run.status == RunStatus.QUEUED)))

        def drain(ids: list[int], profile: cProfile.Profile | None = None) -> float:
            with rt.sessions() as s:  # the intake sends each run's entity key with its job
                rows = s.execute(sa.select(Run.id, Run.entity_key).where(Run.id.in_(ids)))
                entities = {run_id: key for run_id, key in rows}
            connector.jobs.enqueue_runs(rt, ids, entities)
            start = time.perf_counter()
            if profile:
                profile.enable()
            rq.SimpleWorker([rt.queue], connection=rt.redis).work(
                burst=True, logging_level="WARNING"
            )
            if profile:
                profile.disable()
            seconds = time.perf_counter() - start
            with rt.sessions() as s:
                done = s.scalar(
                    sa.select(sa.func.count()).where(Run.id.in_(ids), Run.status == "succeeded")
                )
            assert done == len(ids), f"only {done} of {len(ids)} runs succeeded"
            return seconds

        drain(post("WARM", 3))  # first request and run: lazy imports, validators, SQL caches

        # 1. intake (web, no HTTP) per delivery
        before = counters.snapshot()
        start = time.perf_counter()
        ids = post("WEB", n)
        web_s = time.perf_counter() - start
        print(f"== intake through Flask (no HTTP), {args.db}: {web_s / n * 1000:.2f} ms/delivery")
        print("   " + counters.since(before, n))

        # 2. baseline no-op with an in-process SimpleWorker (burst)
        jobs = [
            Queue.prepare_data(NOOP, args=(i,), job_id=f"noop-{i}", result_ttl=3600)
            for i in range(n)
        ]
        with r.pipeline() as pipe:
            rt.queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        before = counters.snapshot()
        start = time.perf_counter()
        rq.SimpleWorker([rt.queue], connection=rt.redis).work(burst=True, logging_level="WARNING")
        noop_s = time.perf_counter() - start
        print(f"\n== no-op job, SimpleWorker: {noop_s / n * 1000:.2f} ms/job ({n / noop_s:.0f}/s)")
        print("   " + counters.since(before, n))

        # 3. the runs with an in-process SimpleWorker (burst)
        before = counters.snapshot()
        run_s = drain(ids)
        print(
            f"\n== runs, SimpleWorker: {run_s / n * 1000:.2f} ms/run ({n / run_s:.0f}/s), "
            f"ratio to the no-op job {noop_s / run_s:.2f}"
        )
        print("   " + counters.since(before, n))
        ids = post("SEG", n)
        segments = Segments(rt)
        start = time.perf_counter()
        try:
            for run_id in ids:
                assert connector.jobs.execute_run(run_id) == "succeeded"
        finally:
            segments.undo()
        print("   where execute_run's time goes (called directly, no RQ):")
        print(segments.report(time.perf_counter() - start, n))

        web_profile, run_profile = cProfile.Profile(), cProfile.Profile()
        drain(post("PROFILED", n, web_profile), run_profile)

        # 4. the runs with RQ's forking Worker (burst), execute_run profiled in each horse
        m = args.fork_runs
        ids = post("FORK", m)
        prof_dir = tmp / "horses"
        prof_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
        env.update(
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            PUENTE_SECRET_KEY=settings.secret_key,
            PUENTE_QUEUE=settings.queue_name,
            PUENTE_LOG_LEVEL="WARNING",
            PUENTE_INSTANCE_DIR=str(tmp),
            PYTHONPATH=str(PROJECT_ROOT),
            BENCH_PROFILE_DIR=str(prof_dir),
        )
        rq_bin = str(Path(sys.executable).parent / "rq")
        burst = [rq_bin, "worker", "--burst", "--url", REDIS_URL, "--logging_level", "WARNING"]

        def drain_forking(job_ids: list[str]) -> float:
            """A fresh product worker (a new process, as in production) drains the queue."""
            subprocess.run(
                [*burst, "--worker-class", "bench.workers.ProfiledWorker", settings.queue_name],
                env=env,
                cwd=PROJECT_ROOT,
                check=True,
                timeout=300,
            )
            # A job that took runs along deleted theirs: time the jobs still there (the one
            # that took others along ended after them), and check every run in the database.
            done = [j for j in Job.fetch_many(job_ids, connection=r) if j is not None]
            assert done and all(j.ended_at for j in done)
            first = min(j.started_at for j in done if j.started_at)
            last = max(j.ended_at for j in done if j.ended_at)
            return (last - first).total_seconds() * len(job_ids) / max(1, len(job_ids) - 1)

        noop_ids = [f"fnoop-{i}" for i in range(m)]
        jobs = [Queue.prepare_data(NOOP, args=(i,), job_id=noop_ids[i]) for i in range(m)]
        with r.pipeline() as pipe:
            rt.queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        fork_noop_s = drain_forking(noop_ids)
        connector.jobs.enqueue_runs(rt, ids)
        fork_s = drain_forking([connector.jobs.job_id(i) for i in ids])
        with rt.sessions() as s:
            done = s.scalar(
                sa.select(sa.func.count()).where(Run.id.in_(ids), Run.status == "succeeded")
            )
        assert done == len(ids), f"only {done} of {len(ids)} runs succeeded"
        horses = [json.loads(p.read_text()) for p in prof_dir.glob("*.json")]
        inside = sum(h["seconds"] for h in horses) / len(horses)
        print(
            f"\n== product Worker (forks per job, parent warmed by connector.worker.warm): "
            f"no-op {fork_noop_s / m * 1000:.1f} ms/job, run {fork_s / m * 1000:.1f} ms/run "
            f"(ratio {fork_noop_s / fork_s:.2f}); execute_run inside the horse "
            f"{inside * 1000:.1f} ms, {sum(h['connects'] for h in horses) / len(horses):.1f} "
            f"new DB connections, "
            f"{sum(h['statements'] for h in horses) / len(horses):.1f} SQL statements"
        )
        fork_stats = pstats.Stats(*[str(p) for p in prof_dir.glob("*.prof")], stream=io.StringIO())

        print(f"\n== cProfile, SimpleWorker draining {n} runs (cumulative, top {args.top})")
        print(profiled(run_profile, args.top))
        print(f"== cProfile, SimpleWorker draining {n} runs (own time, top {args.top})")
        print(profiled(run_profile, args.top, "tottime"))
        print(f"== cProfile, execute_run in {len(horses)} forked horses (cumulative)")
        out = io.StringIO()
        fork_stats.stream = out  # type: ignore[attr-defined]
        fork_stats.files = []  # type: ignore[attr-defined]  # not every horse's file name
        fork_stats.strip_dirs().sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
        print(f"== cProfile, intake of {n} deliveries (cumulative)")
        print(profiled(web_profile, args.top))
        rt.close()
    finally:
        with contextlib.suppress(redis.RedisError):
            r.flushdb()
        r.close()
        db.drop()
        if isinstance(db, PostgresDatabase):
            db.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
