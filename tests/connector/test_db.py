"""Which database errors are worth trying again (a retry, a 503) and which are bugs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from connector.db import is_transient, make_engine
from tests.conftest import BACKENDS, POSTGRES_URL


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


def free_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
