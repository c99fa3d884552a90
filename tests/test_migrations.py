"""Models and migrations agree, on SQLite and PostgreSQL, and upgrading twice changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import connector.models  # noqa: F401  (registers the engine tables)
import invoicing.models  # noqa: F401  (registers the invoicing tables)
from connector import migrate
from database import Base, make_engine

WRITES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_current_head()


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every table's columns, indexes and unique constraints, as the database reports them."""
    inspector = sa.inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(str(sorted(i.items())) for i in inspector.get_indexes(table)),
            sorted(str(sorted(u.items())) for u in inspector.get_unique_constraints(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_the_migrated_database_matches_the_models_exactly(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_the_migrated_database_is_at_the_single_head_revision(engine, database_url):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_heads() == (head_revision(database_url),)


def test_upgrading_an_already_migrated_database_is_a_no_op(engine, database_url):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (name, scopes, prefix, key_hash, created_at) "
                "VALUES ('kept', '[\"read\"]', 'pk_', 'hash-kept', CURRENT_TIMESTAMP)"
            )
        )
    before = snapshot(engine)
    writes: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            writes.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", record)  # every engine, Alembic's too
    try:
        migrate.upgrade(database_url)
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)

    assert writes == []
    assert snapshot(engine) == before
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == (
            head_revision(database_url),
        )
        assert conn.scalar(sa.text("SELECT name FROM api_keys")) == "kept"
