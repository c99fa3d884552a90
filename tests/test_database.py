"""Which database errors are worth trying again (a retry, a 503) and which are bugs."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

import database as db
from database import insert_new, is_transient, make_engine, store_new, utcnow
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.processes import free_port


def raised(engine: sa.Engine, sql: str) -> OperationalError:
    with pytest.raises(OperationalError) as caught, engine.begin() as conn:
        conn.exec_driver_sql(sql)
    return caught.value


def test_sqlite_busy_is_transient_and_a_missing_table_is_not(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    holder = make_engine(url)
    impatient = sa.create_engine(url, connect_args={"timeout": 0})
    with holder.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        conn.commit()
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")  # holds the write lock, uncommitted

        busy = raised(impatient, "INSERT INTO t VALUES (2)")
    missing = raised(impatient, "SELECT * FROM no_such_table")

    assert "locked" in str(busy.orig) and is_transient(busy)
    assert "no such table" in str(missing.orig) and not is_transient(missing)


def test_a_refused_postgresql_connection_is_transient():
    refused = sa.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    )
    with pytest.raises(OperationalError) as caught:
        refused.connect()

    assert "refused" in str(caught.value.orig).lower() and is_transient(caught.value)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL is not a test database")
def test_a_postgresql_query_error_is_not_transient():
    engine = sa.create_engine(POSTGRES_URL, poolclass=NullPool)
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM no_such_table_here")

    assert caught.value.orig.sqlstate == "42P01" and not is_transient(caught.value)


def test_a_sqlite_transaction_waits_for_the_write_lock_then_gives_up_as_sqlite_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")

    # Released while the other waits: the waiting transaction goes on and both rows are kept.
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(lambda: _insert(engine, 2))
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.2)  # still waiting for the lock
        holder.execute("COMMIT")
        waiting.result(timeout=10)

    # Never released: after SQLITE_BUSY_SECONDS, "database is locked", as SQLite says it.
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 0.3)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked") as caught:
        _insert(engine, 3)
    holder.execute("ROLLBACK")
    assert is_transient(caught.value)

    with engine.connect() as conn:  # the connection keeps SQLite's own wait for the rest
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [1, 2]


def _insert(engine: sa.Engine, x: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({x})")


def test_insert_new_makes_a_row_once_and_then_reports_it_exists(rt):
    from invoicing.models import Deal

    values = {"source": "hubspot", "external_ref": "D-1", "won_at": utcnow()}
    with rt.sessions.begin() as s:
        made = insert_new(s, Deal, values, unique=["source", "external_ref"])
        assert made is not None and made.id is not None and made.currency == "EUR"
        again = insert_new(s, Deal, {**values, "title": "other"}, unique=["source", "external_ref"])
        assert again is None
        assert s.scalar(sa.select(sa.func.count()).select_from(Deal)) == 1
        assert s.get_one(Deal, made.id).title is None  # the first row stands, untouched


def test_a_reading_session_does_not_wait_for_sqlite_s_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    sessions = sa.orm.sessionmaker(engine)
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 0.3)
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (2)")  # a writer in the middle of its transaction
    try:
        with db.reading(sessions) as s:  # reads the last committed state, at once
            assert list(s.scalars(sa.text("SELECT x FROM t"))) == [1]
        with sessions() as s, pytest.raises(OperationalError, match="database is locked"):
            s.scalars(sa.text("SELECT x FROM t")).all()  # any other session queues to write
    finally:
        holder.execute("ROLLBACK")


# What a draft line needs to be stored again, copied from one (the twin draft below).
LINE_COLUMNS = (
    "position",
    "description",
    "quantity",
    "unit_price",
    "discount_percent",
    "tax_rate",
    "gross",
    "discount",
    "base",
)


def test_store_new_leaves_a_draft_as_a_flush_would_with_nothing_left_to_load(rt):
    """The draft is written with Core INSERTs (store_new): afterwards its invoice, lines and
    taxes are in the session, stored, every column there (no SELECT to read one), nothing
    pending; and a second draft for the same deal is the first one, not a second row."""
    from invoicing.models import Invoice, InvoiceLine
    from invoicing.service import CustomerData, Invoicing, LineData
    from tests.factories import deal

    data = deal(deal_id="STORE-1")
    statements: list[str] = []

    def executed(*args: Any) -> None:
        statements.append(args[2])

    def draft(s: sa.orm.Session) -> Any:
        return Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            source="test",
            external_ref="STORE-1",
        )

    with rt.sessions.begin() as s:
        made = draft(s).invoice
        assert not s.new and not s.dirty
        sa.event.listen(s.get_bind(), "before_cursor_execute", executed)
        seen = (
            made.id,
            made.created_at,
            made.paid_total,
            made.customer.tax_id,
            [(line.id, line.invoice_id, line.position, line.base) for line in made.lines],
            [(tax.id, tax.rate, tax.amount) for tax in made.taxes],
            made.withholdings,
        )
        s.flush()
        assert statements == []  # all loaded, nothing to write
        sa.event.remove(s.get_bind(), "before_cursor_execute", executed)
    with rt.sessions.begin() as s:
        stored = s.get_one(Invoice, made.id)
        assert stored.created_at == seen[1] and stored.paid_total == seen[2] == 0
        assert [(ln.id, ln.invoice_id, ln.position, ln.base) for ln in stored.lines] == seen[4]
        assert [(t.id, t.rate, t.amount) for t in stored.taxes] == seen[5]
        again = draft(s)
        assert (again.invoice.id, again.created) == (made.id, False)
        assert s.scalar(sa.select(sa.func.count()).select_from(InvoiceLine)) == len(seen[4])
        # What a transaction finds when another stored the same deal's draft meanwhile: its
        # row clashes (no savepoint, no IntegrityError), nothing of it is stored.
        twin = Invoice(
            customer=stored.customer,
            source="test",
            external_ref="STORE-1",
            base_total=Decimal("1.00"),
            tax_total=Decimal("0.00"),
            total=Decimal("1.00"),
            lines=[InvoiceLine(**{c: getattr(stored.lines[0], c) for c in LINE_COLUMNS})],
        )
        assert store_new(s, twin, "lines") is False
        assert twin.id is None and twin not in s
        assert s.scalar(sa.select(sa.func.count()).select_from(InvoiceLine)) == len(seen[4])
