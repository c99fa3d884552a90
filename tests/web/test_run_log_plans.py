"""The run log's pages read their rows from an index, in the order they show them: no query
reads every run key, and none sorts all the failed runs or a whole day's to show fifty.

The plans are asked of the page query each request really runs. SQLite plans without
statistics (the product runs no ANALYZE), as it does at a million runs. PostgreSQL rightly
reads a tiny table whole, so there sequential scans, bitmap scans and full sorts are switched
off for the EXPLAIN: what is left says whether an index can give the rows, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from connector.runtime import Runtime
from tests.factories import make_api_key, signed_in


@contextmanager
def statements(rt: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements run meanwhile, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        seen.append((sql, params))

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)


def page_query(seen: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The statement that reads the page of runs (the one with a LIMIT)."""
    [found] = [
        (sql, params)
        for sql, params in seen
        if sql.lstrip().startswith("SELECT runs.id") and "LIMIT" in sql
    ]
    return found


def plan(rt: Runtime, sql: str, params: Any, sorts: bool) -> list[str]:
    """Its plan; on PostgreSQL with full sorts off too unless `sorts`."""
    with rt.engine.connect() as conn:
        if rt.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            return [str(row[3]) for row in rows]
        switches = ["enable_seqscan", "enable_bitmapscan"] + ([] if sorts else ["enable_sort"])
        for switch in switches:
            conn.exec_driver_sql(f"SET LOCAL {switch} = off")
        return [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, params)]


def full_sorts(lines: list[str]) -> list[str]:
    """SQLite's temporary B-tree for an ORDER BY; PostgreSQL's Sort of every row (an
    Incremental Sort of rows already in order of their first key is not one)."""
    return [
        line
        for line in lines
        if "USE TEMP B-TREE FOR ORDER BY" in line
        or line.strip().removeprefix("->").strip().startswith("Sort  (")
    ]


def asked(
    rt: Runtime, client: Any, path: str, headers: dict[str, str] | None = None, sorts: bool = False
) -> list[str]:
    """The plan of the page query `path` runs."""
    with statements(rt) as seen:
        assert client.get(path, headers=headers or {}).status_code == 200
    return plan(rt, *page_query(seen), sorts=sorts)


def index_conditions(lines: list[str]) -> str:
    """PostgreSQL: every Index Cond of the plan, in one string."""
    return " ".join(line for line in lines if "Index Cond" in line)


@pytest.mark.parametrize("path", ["/ui/runs?status=failed", "/api/v1/runs?status=failed"])
def test_failed_runs_are_read_newest_first_from_the_status_index_without_a_sort(rt, client, path):
    if path.startswith("/ui"):
        signed_in(rt, client)
        headers = None
    else:
        headers = {"Authorization": f"Bearer {make_api_key(rt)}"}

    lines = asked(rt, client, path, headers)

    assert full_sorts(lines) == []
    if rt.engine.dialect.name == "sqlite":
        assert any("INDEX ix_runs_status_id (status=?)" in x for x in lines), lines
    else:
        assert "ix_runs_status_id" in "\n".join(lines), lines
        assert "status" in index_conditions(lines), lines


def test_the_search_reads_run_keys_by_name_and_value_never_every_key(rt, client):
    signed_in(rt, client)

    # The runs found are few: sorting them is fine (and switching sorts off would make
    # PostgreSQL merge along the whole run_keys index to avoid it).
    lines = asked(rt, client, "/ui/runs?q=D-0042", sorts=True)

    if rt.engine.dialect.name == "sqlite":
        assert not any(x.strip().startswith("SCAN run_keys") for x in lines), lines
        assert any("ix_run_keys_name_value (name=? AND value=?)" in x for x in lines), lines
    else:
        assert not any("Seq Scan on run_keys" in x for x in lines), lines
        keys = [x for x in lines if "Index Cond" in x and "value" in x]
        assert keys and all("name" in x for x in keys), "\n".join(lines)


def test_a_days_runs_are_read_in_the_created_at_index_order_without_sorting_the_day(rt, client):
    signed_in(rt, client)

    lines = asked(rt, client, "/ui/runs?since=2026-03-10&until=2026-03-10")

    assert full_sorts(lines) == []
    if rt.engine.dialect.name == "sqlite":
        assert any("INDEX ix_runs_created_at (created_at>? AND created_at<?)" in x for x in lines)
    else:
        assert "created_at" in index_conditions(lines), lines


def test_the_unfiltered_page_is_read_backwards_along_the_primary_key(rt, client):
    signed_in(rt, client)

    lines = asked(rt, client, "/ui/runs")

    assert full_sorts(lines) == []
