"""Apply Alembic migrations from code (launcher, CLI, tests)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config

from connector.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def drop_columns(op: Any, table: str, *columns: str) -> None:
    """Drop columns in a migration's downgrade, on SQLite too.

    SQLite (3.35+) drops a plain column in place; Alembic's batch mode would copy the table,
    which the foreign keys to it (enforced by our engines) forbid once it holds rows.
    """
    if op.get_bind().dialect.name == "sqlite":
        for column in columns:
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        return
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.drop_column(column)
