"""Memory over a long run: do the web and the workers stay flat after warm-up?

    .venv/bin/python -m bench.soak [--runs 100000] [--round 2000] [--db sqlite|postgresql]
        [--workers 2] [--seconds 1500]

Starts the product as `make bench` does (bench.e2e.Stack: gunicorn with 2 workers and N
`rq worker`s on a fresh database, Redis database 7), then sends signed deliveries in rounds,
waiting for each round's runs to finish before the next, and after every round reads the
resident memory (VmRSS) of the largest web and worker process and the database's size.
Bounded in count (--runs) and time (--seconds: no round starts after it). It prints one line
a round and the drift: the last round's memory against the one after warm-up (round 2).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from bench.e2e import (
    DRAIN_SECONDS,
    POSTGRES_URL,
    REDIS_URL,
    SEND_THREADS,
    BenchError,
    PostgresDatabase,
    Processes,
    SqliteDatabase,
    Stack,
    deliveries,
    memory_mb,
    runs_pending,
    send_all,
    wait_until,
)

FLAT = 0.10  # memory may grow this much from round 2 to the last and still be flat


def database_mb(stack: Stack, db: SqliteDatabase | PostgresDatabase) -> float:
    if isinstance(db, SqliteDatabase):
        assert db.path is not None
        return (
            sum(
                Path(f"{db.path}{suffix}").stat().st_size
                for suffix in ("", "-wal")
                if Path(f"{db.path}{suffix}").exists()
            )
            / 2**20
        )
    assert stack.probe_engine is not None
    with stack.probe_engine.connect() as c:
        size = c.scalar(
            sa.text(
                "SELECT sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))) "
                "FROM pg_tables WHERE schemaname = current_schema()"
            )
        )
    return float(size or 0) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--round", type=int, default=2000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1500)
    args = parser.parse_args()
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    tmp = Path(tempfile.mkdtemp(prefix="puente-soak-"))
    db: SqliteDatabase | PostgresDatabase = (
        SqliteDatabase(tmp) if args.db == "sqlite" else PostgresDatabase(POSTGRES_URL)
    )
    stack = Stack(Processes(tmp / "soak"))
    started = time.monotonic()
    rows: list[tuple[int, float, dict[str, float], float]] = []
    try:
        r.flushdb()
        stack.start(db, "product", args.workers, "soak", tmp, r)
        done = 0
        print(
            f"{'runs':>8} {'seconds':>8} {'runs/s':>7} {'web MB':>7} {'worker MB':>9} {'db MB':>7}"
        )
        for n in range(1, args.runs // args.round + 1):
            if time.monotonic() - started > args.seconds:
                print(f"stopped by the {args.seconds:.0f} s budget after {done} runs")
                break
            t0 = time.monotonic()
            batch = deliveries(stack.secret, f"SOAK-{n}", args.round)
            sent = send_all(stack.hook_url, batch, SEND_THREADS, DRAIN_SECONDS)
            if len(sent) != len(batch) or any(s.status != 202 for s in sent):
                raise BenchError(f"round {n}: not every delivery was accepted")
            wait_until(
                lambda: runs_pending(stack.probe) == 0, DRAIN_SECONDS, f"round {n}", stack.procs
            )
            done += len(sent)
            memory = memory_mb(stack.procs, "VmRSS")
            rows.append((done, time.monotonic() - started, memory, database_mb(stack, db)))
            print(
                f"{done:>8} {rows[-1][1]:>8.0f} {len(sent) / (time.monotonic() - t0):>7.0f} "
                f"{memory['web']:>7.1f} {memory['workers']:>9.1f} {rows[-1][3]:>7.1f}",
                flush=True,
            )
    finally:
        stack.close()
        db.drop()
        if isinstance(db, PostgresDatabase):
            db.close()
        r.flushdb()
        shutil.rmtree(tmp, ignore_errors=True)
    if len(rows) >= 3:
        base, last = rows[1], rows[-1]
        for role in ("web", "workers"):
            growth = last[2][role] / base[2][role] - 1
            verdict = "flat" if growth <= FLAT else "GROWING"
            print(
                f"{role}: {base[2][role]:.1f} MB after {base[0]} runs, {last[2][role]:.1f} MB "
                f"after {last[0]} ({growth:+.1%}): {verdict}"
            )
        print(f"database: {last[3] * 2**20 / last[0]:.0f} bytes per run (no retention pruning)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
