"""Alembic environment: one metadata for the engine and invoicing tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import connector.models  # noqa: F401  (registers the tables)
import invoicing.models  # noqa: F401
from connector.settings import Settings
from database import Base, make_engine

config = context.config


def _url() -> str:
    return config.attributes.get("database_url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            _run_sqlite(conn)
        else:
            _run(conn)
    engine.dispose()


def _run_sqlite(conn: Connection) -> None:
    """SQLite rebuilds a table to change a column or constraint (batch mode), and dropping
    the old table with foreign keys enforced would break every row pointing at it. As
    SQLite's documentation prescribes for schema changes: foreign keys off (outside the
    transaction), migrate, check that every reference still holds, foreign keys back on."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _run(conn)
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        conn.commit()
        if broken:
            raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
