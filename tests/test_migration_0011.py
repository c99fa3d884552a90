"""Migration 0011: keys made before scopes keep every scope (they were all admin keys), on
SQLite and PostgreSQL, and a downgrade gives them their role back."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command

from connector import migrate
from database import make_engine
from tests.invoicing.test_migration_0004 import blank_url  # noqa: F401  (fixture)


def test_0011_gives_existing_keys_every_scope_and_downgrades(blank_url):  # noqa: F811
    migrate.upgrade(blank_url, "0010")
    engine = make_engine(blank_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (name, role, prefix, key_hash, created_at) "
                    "VALUES ('old', 'admin', 'pk_', 'h', CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(blank_url)
        with engine.connect() as conn:
            scopes = conn.execute(sa.text("SELECT scopes FROM api_keys")).scalar()
        assert (json.loads(scopes) if isinstance(scopes, str) else scopes) == [
            "read",
            "write",
            "admin",
        ]
        command.downgrade(migrate.alembic_config(blank_url), "0010")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT role FROM api_keys")).scalar() == "admin"
    finally:
        engine.dispose()
