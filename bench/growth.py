"""Growth: does the run log stay fast, and how big is it, as it grows to a million runs?

    .venv/bin/python -m bench.growth [--db sqlite|postgresql|both]
        [--sizes 10000,100000,1000000] [--budget-seconds 900] [--requests 50] [--warmup 5]

For each database and each size N it builds a fresh database (a SQLite file, or a schema in
the `test` database of BENCH_POSTGRES_URL, dropped after), sends two real deliveries through
the app and runs them with an in-process RQ SimpleWorker (one succeeds, one fails on a bad
NIF), and copies their rows (events, runs, run_steps, run_attempts, run_keys) with SQLAlchemy
Core executemany, 10,000 runs a transaction, until the log holds N runs spread over the last
30 days (the retention period): ~95 % succeeded, ~4 % failed (the real failed run), ~1 % dead
(5 attempts, a transient error). Invoices and the outbox are not copied: no run page reads
them. PostgreSQL is then vacuumed and analyzed, as autovacuum would do after such a load;
SQLite gets no ANALYZE, as the product runs none.

Then, through the Flask test client (no HTTP), it asks each query as the product serves it,
in turn, `--warmup` + `--requests` rounds: the API's run list (first page, then found by deal
and by status=failed), the signed-in UI's runs page (the same three, a customer's runs found
by tax id typed in lowercase, and one day), and a baseline that does not grow (the API's flow
list: same key check, rate limit and JSON). It reports p50/p95, the ratio of p95 to the
smallest size's (target: within 2× at 1M), database bytes per run (SQLite: file size after a
WAL checkpoint; PostgreSQL: pg_total_relation_size of the schema's tables, indexes and TOAST
included), the statements each query runs with their time, and their plans (EXPLAIN QUERY
PLAN / EXPLAIN) at the largest size; the full plan of any query whose p95 grows more than 2×.
The table is printed and written to bench/growth.md.

Loading is bounded: a size is not started when the load rate measured so far says it would
end past the database's budget, and a load that passes it is stopped (and said so). Redis:
BENCH_GROWTH_REDIS_URL (redis://127.0.0.1:6379/10), flushed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
import rq
import sqlalchemy as sa
from flask.testing import FlaskClient

from bench.e2e import POSTGRES_URL, PostgresDatabase, SqliteDatabase, percentile
from connector import accounts, admin, migrate, runtime
from connector.errors import TransientError
from connector.models import Event, Run, RunAttempt, RunKey, RunStatus, RunStep
from connector.runtime import Runtime, build_runtime
from connector.settings import PROJECT_ROOT, Settings
from connector.standard_webhooks import headers_for
from database import READ_ONLY, Base, _json_dumps
from web import create_app, demo

REDIS_URL = os.environ.get("BENCH_GROWTH_REDIS_URL", "redis://127.0.0.1:6379/10")
QUEUE = "bench-growth"
RESULTS_FILE = PROJECT_ROOT / "bench" / "growth.md"
CHUNK = 10_000  # runs per transaction while loading
SPREAD = timedelta(days=30)  # the runs' creation times, ending now (retention keeps 30 days)
MIX = {"failed": 0.04, "dead": 0.01}  # the rest succeeded
DEAD_ATTEMPTS = 5  # connector.runner.MAX_ATTEMPTS
CUSTOMERS = 5_000  # distinct tax ids the deals are spread over
ROUNDS_SECONDS = 420.0  # the timed rounds of one size stop after this (at least 10 are made)
BASELINE = "baseline: api flows"
TARGET = 2.0  # p95 at the largest size within 2× of the smallest size's
PASSWORD = "una frase larga para medir"
MADRID = ZoneInfo("Europe/Madrid")
NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
LOG_TABLES = ("events", "runs", "run_steps", "run_attempts", "run_keys")
TEMPLATE_DEAL = {"ok": "D-GROWTH-OK", "failed": "D-GROWTH-BAD"}
BAD_NIF = "12345678A"  # the control letter does not match: the draft invoice is refused


class BenchError(Exception):
    """The benchmark cannot go on or measured something wrong: fail loudly."""


class OverBudget(Exception):
    """Loading a size went past the database's budget."""

    def __init__(self, loaded: int, seconds: float) -> None:
        super().__init__(f"stopped after {loaded:,} runs in {seconds:.0f} s")
        self.loaded = loaded
        self.seconds = seconds


# ---------------------------------------------------------------- the template runs


@dataclass
class Template:
    """One real run's rows, as stored (JSON as text), read back from the database."""

    event: dict[str, Any]
    run: dict[str, Any]
    steps: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    keys: list[dict[str, Any]]


def raw_rows(conn: sa.Connection, table: sa.Table, where: Any) -> list[dict[str, Any]]:
    """Rows with their JSON columns as the stored text (jsonb's text on PostgreSQL)."""
    columns = [
        sa.cast(c, sa.Text).label(c.name) if isinstance(c.type, sa.JSON) else c for c in table.c
    ]
    return [dict(row) for row in conn.execute(sa.select(*columns).where(where)).mappings()]


def read_template(rt: Runtime, run_id: int) -> Template:
    tables = Base.metadata.tables
    with rt.engine.connect().execution_options(**READ_ONLY) as conn:
        [run] = raw_rows(conn, tables["runs"], Run.id == run_id)
        [event] = raw_rows(conn, tables["events"], Event.id == run["event_id"])
        steps = raw_rows(conn, tables["run_steps"], RunStep.run_id == run_id)
        attempts = raw_rows(conn, tables["run_attempts"], RunAttempt.run_id == run_id)
        keys = raw_rows(conn, tables["run_keys"], RunKey.run_id == run_id)
    return Template(event, run, _by_id(steps), _by_id(attempts), _by_id(keys))


def _by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: int(row["id"]))


def real_runs(rt: Runtime, client: FlaskClient) -> dict[str, Template]:
    """Deliver the demo deal twice (the second with a bad NIF), run both for real."""
    with rt.sessions.begin() as s:
        hook, secret = demo.ensure_demo(s, rt.secrets, rt.registry)
        path = f"/hooks/{hook.token}"
    run_ids = {}
    for kind, deal_id in TEMPLATE_DEAL.items():
        deal = demo.sample_deal(deal_id)
        if kind == "failed":
            deal["customer"]["tax_id"] = BAD_NIF
        body = json.dumps(deal, ensure_ascii=False).encode()
        headers = headers_for(secret, f"msg_{secrets.token_hex(16)}", int(time.time()), body)
        answer = client.post(
            path, data=body, headers={**headers, "Content-Type": "application/json"}
        )
        if answer.status_code != 202:
            raise BenchError(f"delivery refused: {answer.status_code} {answer.get_data(True)}")
        [run_ids[kind]] = answer.json["run_ids"]  # type: ignore[index]
    # RQ's worker installs its own SIGINT/SIGTERM handlers and leaves them: put ours back, or
    # a signal later would raise RQ's StopRequested in the middle of a load.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rq.SimpleWorker([rt.queue, rt.bulk_queue], connection=rt.redis).work(
            burst=True, logging_level="WARNING"
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    templates = {kind: read_template(rt, run_id) for kind, run_id in run_ids.items()}
    for kind, template in templates.items():
        expected = RunStatus.SUCCEEDED if kind == "ok" else RunStatus.FAILED
        if template.run["status"] != expected or len(template.steps) != 2:
            raise BenchError(f"the {kind} template run is {template.run['status']}: {template.run}")
    return templates


# ---------------------------------------------------------------- copying them


def pattern(raw: str | None, values: dict[str, str], ids: dict[str, str]) -> str | None:
    """A %-template of a stored JSON text: the template run's own deal, tax id and record ids
    become fields. Written as the product writes JSON (PostgreSQL reparses it anyway)."""
    if raw is None:
        return None
    data = json.loads(raw)

    def mark(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: f"@@{ids[k]}@@" if k in ids and type(v) is int else mark(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = _json_dumps(mark(data)).replace("%", "%%")
    for value, name in values.items():
        text = text.replace(value, f"%({name})s")
    for name in ids.values():
        text = text.replace(f'"@@{name}@@"', f"%({name})d")
    return text


def nif(number: int, valid: bool = True) -> str:
    digits = 10_000_000 + number * 7_919 % 89_999_999
    letter = NIF_LETTERS[digits % 23] if valid else NIF_LETTERS[(digits + 1) % 23]
    return f"{digits:08d}{letter}"


@dataclass
class Patterns:
    """One kind of run (ok, failed, dead) ready to stamp out."""

    template: Template
    status: str
    event_payload: str | None
    run_error: str | None
    entity_key: str
    steps: list[dict[str, Any]]  # the step rows, with JSON columns as %-templates
    attempt: dict[str, Any]
    attempts: int
    keys: list[str]  # business key names, in the product's order


def patterns_of(templates: dict[str, Template]) -> dict[str, Patterns]:
    ids = {"deal_record_id": "deal_record", "invoice_id": "invoice", "id": "customer"}

    def of(template: Template, kind: str, nif_value: str) -> Patterns:
        values = {TEMPLATE_DEAL[kind]: "deal", nif_value: "nif"}
        steps = []
        for step in template.steps:
            steps.append(
                {
                    **step,
                    "input": pattern(step["input"], values, ids),
                    "output": pattern(step["output"], values, ids),
                    "error": pattern(step["error"], values, ids),
                }
            )
        return Patterns(
            template=template,
            status=str(template.run["status"]),
            event_payload=pattern(template.event["payload"], values, ids),
            run_error=pattern(template.run["error"], values, ids),
            entity_key=str(template.run["entity_key"])
            .replace("%", "%%")
            .replace(TEMPLATE_DEAL[kind], "%(deal)s"),
            steps=steps,
            attempt={
                **template.attempts[0],
                "error": pattern(template.attempts[0]["error"], values, ids),
            },
            attempts=1,
            keys=[str(k["name"]) for k in template.keys],
        )

    ok_nif = json.loads(templates["ok"].event["payload"])["customer"]["tax_id"]
    ok = of(templates["ok"], "ok", ok_nif)
    failed = of(templates["failed"], "failed", BAD_NIF)
    # Dead: the succeeded run's data, its invoice step failed 5 times on a transient error (a
    # lost database connection, what connector.steps calls transient for in-process actions).
    transient = _json_dumps(
        TransientError(
            'database error: connection to server at "127.0.0.1", port 5432 failed: '
            "server closed the connection unexpectedly"
        ).as_dict()
    ).replace("%", "%%")
    dead_steps = [dict(ok.steps[0]), {**ok.steps[1], "status": "failed", "output": "null"}]
    dead_steps[1]["error"] = transient
    dead_steps[1]["attempts"] = DEAD_ATTEMPTS
    dead = Patterns(
        template=templates["ok"],
        status=RunStatus.DEAD,
        event_payload=ok.event_payload,
        run_error=transient,
        entity_key=ok.entity_key,
        steps=dead_steps,
        attempt={**ok.attempt, "status": RunStatus.DEAD, "error": transient},
        attempts=DEAD_ATTEMPTS,
        keys=[k for k in ok.keys if k != "invoice_ref"],
    )
    return {"ok": ok, "failed": failed, "dead": dead}


def light_table(name: str) -> sa.TableClause:
    """The table without column types: values go to the driver as given (JSON as text)."""
    return sa.table(name, *(sa.column(c.name) for c in Base.metadata.tables[name].c))


class Generator:
    """Rows of new runs copied from the templates: new ids, deals, tax ids and times."""

    def __init__(self, patterns: dict[str, Patterns], dialect: str, first_ids: dict[str, int]):
        self.patterns = patterns
        self.sqlite = dialect == "sqlite"
        self.next = dict(first_ids)
        self.rng = random.Random(14)
        self.invoices = 1  # the template run's draft is invoice 1

    def stamp(self, moment: datetime) -> Any:
        """A UTC time as the product stores it (SQLite: naive text with microseconds)."""
        if self.sqlite:
            return moment.replace(tzinfo=None).isoformat(" ", "microseconds")
        return moment

    def _id(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value

    def kind(self) -> str:
        draw = self.rng.random()
        if draw < MIX["dead"]:
            return "dead"
        return "failed" if draw < MIX["dead"] + MIX["failed"] else "ok"

    def chunk(self, created: list[datetime]) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in LOG_TABLES}
        for moment in created:
            self.add(rows, self.kind(), moment)
        return rows

    def add(self, rows: dict[str, list[dict[str, Any]]], kind: str, created: datetime) -> None:
        p = self.patterns[kind]
        run_id, event_id = self._id("runs"), self._id("events")
        customer = self.rng.randrange(CUSTOMERS)
        if kind == "ok":
            self.invoices += 1
        fields = {
            "deal": deal_of(run_id),
            "nif": nif(customer, valid=kind != "failed"),
            "deal_record": run_id,
            "invoice": self.invoices,
            "customer": customer + 1,
        }
        fill = _filler(fields)
        started = created + timedelta(milliseconds=self.rng.uniform(5, 60))
        rows["events"].append(
            {
                **p.template.event,
                "id": event_id,
                "dedup_key": f"msg_{self.rng.getrandbits(128):032x}",
                "payload": fill(p.event_payload),
                "received_at": self.stamp(created),
            }
        )
        moment = started
        for attempt in range(1, p.attempts + 1):
            if attempt > 1:  # backoff before the next attempt
                moment += timedelta(seconds=2**attempt * 5)
            ended = moment + timedelta(milliseconds=self.rng.uniform(15, 40))
            status = p.attempt["status"] if attempt == p.attempts else "retry"
            rows["run_attempts"].append(
                {
                    **p.attempt,
                    "id": self._id("run_attempts"),
                    "run_id": run_id,
                    "attempt": attempt,
                    "status": status,
                    "started_at": self.stamp(moment),
                    "finished_at": self.stamp(ended),
                    "error": fill(p.attempt["error"]),
                }
            )
        finished = ended
        rows["runs"].append(
            {
                **p.template.run,
                "id": run_id,
                "event_id": event_id,
                "status": p.status,
                "attempts": p.attempts,
                "created_at": self.stamp(created),
                "enqueued_at": self.stamp(created),
                "started_at": self.stamp(started),
                "finished_at": self.stamp(finished),
                "error": fill(p.run_error),
                "entity_key": p.entity_key % fields,
            }
        )
        step_start = moment + timedelta(milliseconds=3)
        for step in p.steps:
            duration = self.rng.randint(3, 16)
            rows["run_steps"].append(
                {
                    **step,
                    "id": self._id("run_steps"),
                    "run_id": run_id,
                    "input": fill(step["input"]),
                    "output": fill(step["output"]),
                    "error": fill(step["error"]),
                    "started_at": self.stamp(step_start),
                    "finished_at": self.stamp(step_start + timedelta(milliseconds=duration)),
                    "duration_ms": duration,
                }
            )
            step_start += timedelta(milliseconds=duration + 1)
        values = {
            "deal_ref": fields["deal"],
            "customer_tax_id": fields["nif"],
            "invoice_ref": str(fields["invoice"]),
        }
        for name in p.keys:
            rows["run_keys"].append(
                {"id": self._id("run_keys"), "run_id": run_id, "name": name, "value": values[name]}
            )


def _filler(fields: dict[str, Any]) -> Callable[[str | None], str | None]:
    def fill(text: str | None) -> str | None:
        return None if text is None else text % fields

    return fill


def deal_of(run_id: int) -> str:
    return f"D-{run_id:08d}"


def next_ids(rt: Runtime) -> dict[str, int]:
    """The first free id of each log table."""
    with rt.engine.connect() as conn:
        return {
            name: int(conn.execute(sa.text(f"SELECT max(id) FROM {name}")).scalar() or 0) + 1
            for name in LOG_TABLES
        }


@dataclass
class Load:
    runs: int = 0
    rows: int = 0
    seconds: float = 0.0
    first_run_id: int = 0
    last_run_id: int = 0
    note: str = ""


def load(rt: Runtime, gen: Generator, count: int, deadline: float) -> Load:
    """Insert `count` runs (ids ascending with time, spread over SPREAD up to now)."""
    tables = {name: light_table(name) for name in LOG_TABLES}
    now = datetime.now(UTC) - timedelta(minutes=5)  # before the template runs
    start = now - SPREAD
    step = SPREAD / count
    done = Load(first_run_id=gen.next["runs"])
    began = time.monotonic()
    last_report = began
    for offset in range(0, count, CHUNK):
        n = min(CHUNK, count - offset)
        rows = gen.chunk([start + step * (offset + i) for i in range(n)])
        with rt.engine.begin() as conn:
            for name in LOG_TABLES:  # parents first: SQLite checks foreign keys per statement
                conn.execute(tables[name].insert(), rows[name])
        done.runs += n
        done.rows += sum(len(r) for r in rows.values())
        done.seconds = time.monotonic() - began
        if time.monotonic() - last_report > 15 or done.runs == count:
            last_report = time.monotonic()
            print(
                f"    loaded {done.runs:>9,} / {count:,} runs ({done.rows:,} rows) "
                f"in {done.seconds:5.0f} s, {done.runs / done.seconds:,.0f} runs/s",
                flush=True,
            )
        if time.monotonic() > deadline and done.runs < count:
            raise OverBudget(done.runs, done.seconds)
    done.last_run_id = gen.next["runs"] - 1
    return done


def settle(rt: Runtime) -> None:
    """After the load: PostgreSQL's sequences past the copied ids, then VACUUM ANALYZE (what
    autovacuum would do soon after); SQLite's WAL checkpointed into the file."""
    if rt.engine.dialect.name == "postgresql":
        with rt.engine.begin() as conn:
            for name in LOG_TABLES:
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            names = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            conn.execute(sa.text(f"VACUUM ANALYZE {', '.join(names)}"))  # this schema only
    else:
        checkpoint(rt)


def checkpoint(rt: Runtime) -> None:
    raw = rt.engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()


# ---------------------------------------------------------------- size


def database_bytes(
    rt: Runtime, db: SqliteDatabase | PostgresDatabase
) -> tuple[int, dict[str, int]]:
    """The whole database's bytes, and by table (indexes and TOAST included)."""
    if isinstance(db, SqliteDatabase):
        checkpoint(rt)
        assert db.path is not None
        total = sum(
            Path(f"{db.path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{db.path}{suffix}").exists()
        )
        by_table: dict[str, int] = {}
        with contextlib.suppress(sqlite3.Error, sa.exc.DBAPIError):  # dbstat may be absent
            with rt.engine.connect().execution_options(**READ_ONLY) as conn:
                rows = conn.exec_driver_sql(
                    "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d "
                    "JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"
                ).all()
            by_table = {str(name): int(size) for name, size in rows}
        return total, by_table
    with rt.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relkind = 'r'"
            ),
            {"schema": db.schema},
        ).all()
    by_table = {str(name): int(size) for name, size in rows}
    return sum(by_table.values()), by_table


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    name: str
    ui: bool
    path: Callable[[random.Random], str]
    check: Callable[[str, str], str | None]  # (path, body) → what is wrong, or None


def tax_ids(rt: Runtime, first: int, last: int, count: int = 50) -> list[str]:
    """Customers' tax ids some runs have (a customer has ~N/5,000 runs)."""
    rng = random.Random(count)
    ids = [rng.randint(first, last) for _ in range(count)]
    with rt.engine.connect().execution_options(**READ_ONLY) as conn:
        found = conn.execute(
            sa.select(RunKey.value).where(RunKey.run_id.in_(ids), RunKey.name == "customer_tax_id")
        ).scalars()
        return sorted(set(found))


def queries(first: int, last: int, day: date, customers: list[str]) -> list[Query]:
    """What a support person does: the newest runs, a deal's run, a customer's runs, the
    failed ones, a day."""

    def a_deal(rng: random.Random) -> str:
        return deal_of(rng.randint(first, last))

    def a_customer(rng: random.Random) -> str:
        return rng.choice(customers).lower()  # typed in lowercase: found in capitals

    def api_total_one(path: str, body: str) -> str | None:
        total = json.loads(body)["total"]
        return None if total == 1 else f"{path}: {total} runs, expected 1"

    def api_page(status: str | None) -> Callable[[str, str], str | None]:
        def check(path: str, body: str) -> str | None:
            items = json.loads(body)["items"]
            if not items or (status and {i["status"] for i in items} != {status}):
                return f"{path}: {len(items)} runs, of {sorted({i['status'] for i in items})}"
            return None

        return check

    def ui_found(path: str, body: str) -> str | None:
        run_id = int(path.rsplit("D-", 1)[1])
        return None if f'href="/ui/runs/{run_id}"' in body else f"{path}: run {run_id} not listed"

    def ui_page(path: str, body: str) -> str | None:
        rows = body.count('<a href="/ui/runs/') - body.count('<a href="/ui/runs/refused')
        return None if rows > 0 else f"{path}: no run listed"

    def flows(path: str, body: str) -> str | None:
        return None if json.loads(body)["items"] else f"{path}: no flow"

    return [
        # The baseline: the same API path (key, rate, JSON) on a list whose size never grows.
        Query(BASELINE, False, lambda _: "/api/v1/flows", flows),
        Query("api list", False, lambda _: "/api/v1/runs", api_page(None)),
        Query(
            "api deal_ref=", False, lambda r: f"/api/v1/runs?deal_ref={a_deal(r)}", api_total_one
        ),
        Query(
            "api status=failed", False, lambda _: "/api/v1/runs?status=failed", api_page("failed")
        ),
        Query("ui list", True, lambda _: "/ui/runs", ui_page),
        Query("ui q=deal", True, lambda r: f"/ui/runs?q={a_deal(r)}", ui_found),
        Query("ui q=tax id", True, lambda r: f"/ui/runs?q={a_customer(r)}", ui_page),
        Query("ui status=failed", True, lambda _: "/ui/runs?status=failed", ui_page),
        Query("ui one day", True, lambda _: f"/ui/runs?since={day}&until={day}", ui_page),
    ]


@dataclass
class Statement:
    sql: str
    params: Any
    ms: float


class Recorder:
    """The SQL statements one request runs, with their time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.on = False
        self.statements: list[Statement] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        conn.info["growth_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if self.on:
            ms = (time.perf_counter() - conn.info.pop("growth_started")) * 1000
            self.statements.append(Statement(sql, params, ms))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        self.statements = []
        self.on = True
        try:
            yield self.statements
        finally:
            self.on = False

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


def examine(engine: sa.Engine, statement: Statement) -> list[str]:
    """The plan of one recorded statement, one line per node; its `ms` set to the median of
    3 runs of it alone, every row fetched (SQLite computes most rows during the fetch, which
    the cursor events that recorded it do not see)."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            conn.exec_driver_sql(statement.sql, statement.params).fetchall()
            times.append((time.perf_counter() - start) * 1000)
        statement.ms = statistics.median(times)
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        rows = conn.exec_driver_sql("EXPLAIN " + statement.sql, statement.params)
        return [str(line) for (line,) in rows]


def full_scans(plan: list[str]) -> list[str]:
    """Plan lines that may read a whole table or index (SQLite's SCAN in the order a LIMIT
    asks for stops early; its time across sizes tells)."""
    found = []
    for line in plan:
        text = line.strip().lstrip("->").strip()
        if text.startswith("SCAN ") and "CONSTANT ROW" not in text:
            found.append(text)
        elif text.startswith("Seq Scan") or text.startswith("Parallel Seq Scan"):
            found.append(text.split("  (")[0])
    return found


def short_sql(sql: str, width: int = 150) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= width else one[: width - 1] + "…"


@dataclass
class Timing:
    database: str
    n: int
    query: str
    requests: int
    p50: float
    p95: float
    bytes_per_run: float
    statements: list[tuple[Statement, list[str]]] = field(default_factory=list)

    @property
    def sql_ms(self) -> float:
        """Its statements on runs and run_keys, timed alone."""
        return sum(statement.ms for statement, _ in self.statements)


@dataclass
class Asked:
    """One query's client and headers, the times of its timed requests, its last path."""

    query: Query
    client: FlaskClient
    headers: dict[str, str]
    times: list[float] = field(default_factory=list)
    path: str = ""


def measure(asked: list[Asked], rng: random.Random, requests: int, warmup: int) -> None:
    """Ask every query in turn, round after round (a change in the machine's load hits all of
    them alike): `warmup` rounds, then `requests` timed ones, or fewer (at least 10) when they
    pass ROUNDS_SECONDS."""
    began = time.monotonic()
    for i in range(warmup + requests):
        for a in asked:
            a.path = a.query.path(rng)
            start = time.perf_counter()
            answer = a.client.get(a.path, headers=a.headers)
            body = answer.get_data(as_text=True)
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status_code != 200:
                raise BenchError(f"{a.path}: {answer.status_code} {body[:300]}")
            if i == 0 and (wrong := a.query.check(a.path, body)):
                raise BenchError(f"{a.query.name}: {wrong}")
            if i >= warmup:
                a.times.append(elapsed)
        if i >= warmup + 10 and time.monotonic() - began > ROUNDS_SECONDS:
            print(f"    stopped after {i + 1 - warmup} rounds ({ROUNDS_SECONDS:.0f} s)")
            return


def sign_in(rt: Runtime, client: FlaskClient) -> None:
    """An admin signed in through /ui/login, as a person does."""
    email = f"growth-{secrets.token_hex(3)}@empresa.example"
    with rt.sessions.begin() as s:
        accounts.create_user(s, email, "admin", name="Growth", password=PASSWORD)
    with client.session_transaction() as session:
        token = session.setdefault("csrf_token", secrets.token_urlsafe(16))
    answer = client.post(
        "/ui/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    if answer.status_code != 302:
        raise BenchError(f"sign-in refused: {answer.status_code}")


# ---------------------------------------------------------------- one database, one size


@dataclass
class SizeResult:
    database: str
    n: int
    load: Load | None
    total_bytes: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    timings: list[Timing] = field(default_factory=list)
    note: str = ""


def run_size(
    db: SqliteDatabase | PostgresDatabase,
    n: int,
    tmp: Path,
    r: redis.Redis,
    deadline: float,
    args: argparse.Namespace,
) -> SizeResult:
    r.flushdb()
    result = SizeResult(db.name, n, None)
    rt: Runtime | None = None
    recorder: Recorder | None = None
    try:
        url = db.create(f"growth-{n}")
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            secret_key=secrets.token_urlsafe(32),
            instance_dir=tmp,
            queue_name=QUEUE,
            log_level="WARNING",
        )
        rt = build_runtime(settings)
        runtime.install(rt)
        app = create_app(runtime=rt)
        templates = real_runs(rt, app.test_client())
        gen = Generator(patterns_of(templates), rt.engine.dialect.name, next_ids(rt))
        print(f"  {db.name} N={n:,}: loading {n - len(templates):,} runs", flush=True)
        result.load = load(rt, gen, n - len(templates), deadline)
        settle(rt)
        result.total_bytes, result.by_table = database_bytes(rt, db)
        per_run = result.total_bytes / n
        print(f"    {result.total_bytes / 2**20:,.1f} MB, {per_run:,.0f} bytes/run", flush=True)

        with rt.sessions.begin() as s:
            api_key = admin.create_api_key(s, "growth")
        api = app.test_client()
        ui = app.test_client()
        sign_in(rt, ui)
        middle = datetime.now(MADRID).date() - timedelta(days=SPREAD.days // 2)
        bearer = {"Authorization": f"Bearer {api_key}"}
        asked = [
            Asked(q, ui if q.ui else api, {} if q.ui else bearer)
            for q in queries(
                result.load.first_run_id,
                result.load.last_run_id,
                middle,
                tax_ids(rt, result.load.first_run_id, result.load.last_run_id),
            )
        ]
        measure(asked, random.Random(n), args.requests, args.warmup)
        recorder = Recorder(rt.engine)
        for a in asked:
            timing = Timing(
                db.name,
                n,
                a.query.name,
                len(a.times),
                statistics.median(a.times),
                percentile(a.times, 95),
                per_run,
            )
            with recorder.recording() as statements:
                a.client.get(a.path, headers=a.headers)
            for statement in statements:
                sql = statement.sql.lstrip().upper()
                if sql.startswith("SELECT") and (" RUNS" in sql or " RUN_KEYS" in sql):
                    timing.statements.append((statement, examine(rt.engine, statement)))
            result.timings.append(timing)
            print(
                f"    {a.query.name:<20} p50 {timing.p50:8.1f} ms  p95 {timing.p95:8.1f} ms  "
                f"SQL {timing.sql_ms:6.1f} ms",
                flush=True,
            )
    except OverBudget as exc:
        result.note = f"load {exc} (budget): not measured"
        print(f"    !! {result.note}", flush=True)
    finally:
        if recorder is not None:
            recorder.close()
        if rt is not None:
            runtime.install(None)
            rt.close()
        db.drop()
    return result


def run_database(
    db: SqliteDatabase | PostgresDatabase,
    sizes: list[int],
    tmp: Path,
    r: redis.Redis,
    args: argparse.Namespace,
) -> list[SizeResult]:
    began = time.monotonic()
    deadline = began + args.budget_seconds
    results: list[SizeResult] = []
    rate: float | None = None  # runs/s loaded so far
    for n in sizes:
        left = deadline - time.monotonic()
        if rate is not None and n / rate > left:
            note = (
                f"not started: loading would take ~{n / rate:,.0f} s at {rate:,.0f} runs/s, "
                f"{max(0.0, left):,.0f} s of the budget left"
            )
            print(f"  {db.name} N={n:,}: {note}", flush=True)
            results.append(SizeResult(db.name, n, None, note=note))
            continue
        result = run_size(db, n, tmp, r, deadline, args)
        results.append(result)
        if result.load is not None and result.load.seconds > 0:
            rate = result.load.runs / result.load.seconds
        if result.note:
            break  # a larger size would not fit either
    print(f"  {db.name}: {time.monotonic() - began:,.0f} s in all", flush=True)
    return results


# ---------------------------------------------------------------- report


def report(results: list[SizeResult], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# Run log growth (`bench/growth.py`)",
        "",
        f"`{' '.join(['.venv/bin/python -m bench.growth', *sys.argv[1:]])}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; {seconds:,.0f} s. "
        f"{args.requests} rounds of requests after {args.warmup} warm-up ones, each round "
        "asking every query once, through the Flask test client. Ratio: p95 ÷ p95 at the "
        f"smallest size of the same database (target ≤ {TARGET:g} at the largest); the "
        f"baseline ({BASELINE}: a list that does not grow) shows how much of a ratio is the "
        "machine's load changing. SQL ms: the request's statements on runs and run_keys, "
        "timed alone.",
        "",
        "| database | N | query | p50 ms | p95 ms | ratio to smallest | bytes/run | SQL ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    base = baselines(results)
    for res in results:
        for t in res.timings:
            ratio = t.p95 / base[(t.database, t.query)]
            lines.append(
                f"| {t.database} | {t.n:,} | {t.query} | {t.p50:.1f} | {t.p95:.1f} | "
                f"{ratio:.2f}{' ⚠' if ratio > TARGET and t.query != BASELINE else ''} | "
                f"{t.bytes_per_run:,.0f} | {t.sql_ms:.1f} |"
            )
        if res.note:
            lines.append(f"| {res.database} | {res.n:,} | — {res.note} | | | | | |")
    lines += [
        "",
        "## Loading",
        "",
        "| database | N | runs copied | rows | seconds | runs/s | database MB | log tables MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        if res.load is None or not res.timings:
            continue
        log_mb = sum(v for k, v in res.by_table.items() if k in LOG_TABLES) / 2**20
        lines.append(
            f"| {res.database} | {res.n:,} | {res.load.runs:,} | {res.load.rows:,} | "
            f"{res.load.seconds:,.0f} | {res.load.runs / res.load.seconds:,.0f} | "
            f"{res.total_bytes / 2**20:,.1f} | {log_mb:,.1f} |"
        )
    for res in largest(results):
        if res.by_table:
            top = sorted(res.by_table.items(), key=lambda kv: -kv[1])[:6]
            parts = ", ".join(f"{k} {v / res.n:,.0f}" for k, v in top)
            lines.append(f"\n{res.database}, N={res.n:,}, bytes per run by table: {parts}.")
    lines += [
        "",
        "## Statements and plans at the largest size",
        "",
        "Each statement on runs or run_keys one request of the query runs, timed alone (median "
        "of 3, rows fetched) at the smallest → largest size; its plan when it scans or when "
        "the query's p95 grew past the target.",
        "",
    ]
    first = first_timings(results)
    for res in largest(results):
        for t in res.timings:
            ratio = t.p95 / base[(t.database, t.query)]
            lines.append(f"### {res.database} N={res.n:,} — {t.query} (p95 ratio {ratio:.2f})")
            lines.append("")
            before = first[(t.database, t.query)].statements
            for i, (statement, plan) in enumerate(t.statements):
                scans = full_scans(plan)
                was = (
                    f"{before[i][0].ms:.1f} → "
                    if i < len(before) and before != t.statements
                    else ""
                )
                lines.append(f"- {was}{statement.ms:.1f} ms: `{short_sql(statement.sql)}`")
                if scans:
                    lines.append(f"  - scans: {'; '.join(scans)}")
                if ratio > TARGET or scans:
                    lines += ["", "  ```", *(f"  {p}" for p in plan), "  ```", ""]
            lines.append("")
    return "\n".join(lines) + "\n"


def baselines(results: list[SizeResult]) -> dict[tuple[str, str], float]:
    base: dict[tuple[str, str], float] = {}
    for res in results:  # sizes ascend within a database
        for t in res.timings:
            base.setdefault((t.database, t.query), t.p95)
    return base


def first_timings(results: list[SizeResult]) -> dict[tuple[str, str], Timing]:
    first: dict[tuple[str, str], Timing] = {}
    for res in results:
        for t in res.timings:
            first.setdefault((t.database, t.query), t)
    return first


def largest(results: list[SizeResult]) -> list[SizeResult]:
    best: dict[str, SizeResult] = {}
    for res in results:
        if res.timings:
            best[res.database] = res
    return list(best.values())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--budget-seconds", type=float, default=900.0, help="per database")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    if sizes[0] < 100:
        parser.error("sizes start at 100 runs")
    names = ["sqlite", "postgresql"] if args.db == "both" else [args.db]

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="puente-growth-"))
    r = redis.Redis.from_url(REDIS_URL)
    results: list[SizeResult] = []
    try:
        r.flushdb()
        for name in names:
            db: SqliteDatabase | PostgresDatabase
            if name == "sqlite":
                db = SqliteDatabase(tmp)
            else:
                db = PostgresDatabase(POSTGRES_URL)
                why = db.reachable()
                if why is not None:
                    print(f"postgresql skipped: {why}")
                    results.append(SizeResult("postgresql", 0, None, note=f"skipped: {why}"))
                    db.close()
                    continue
            try:
                results += run_database(db, sizes, tmp, r, args)
            finally:
                if isinstance(db, PostgresDatabase):
                    db.close()
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): cleaned up, nothing written", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(redis.RedisError):
            r.flushdb()
        r.close()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(results, args, time.monotonic() - began)
    RESULTS_FILE.write_text(text)
    print()
    print(text)
    print(f"(written to {RESULTS_FILE.relative_to(PROJECT_ROOT)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
