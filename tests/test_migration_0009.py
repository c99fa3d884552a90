"""Migration 0009 on a database that holds runs: their business keys move to run_keys, every
event gets its source, and a downgrade puts the keys back, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from connector import migrate
from database import make_engine
from tests.invoicing.test_migration_0004 import blank_url  # noqa: F401  (fixture)

ROWS = (
    "INSERT INTO subscriptions (name, trigger_key, token, secret_encrypted, active, created_at) "
    "VALUES ('demo', 'webhook.deal_won', 'tok', 'x', true, CURRENT_TIMESTAMP)",
    "INSERT INTO flows (name, trigger_key, subscription_id, enabled, created_at, updated_at) "
    "VALUES ('f', 'webhook.deal_won', 1, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO flow_versions (flow_id, version, document, created_at) "
    "VALUES (1, 1, '{}', CURRENT_TIMESTAMP)",
    "INSERT INTO events (subscription_id, trigger_key, dedup_key, status, payload, received_at) "
    "VALUES (1, 'webhook.deal_won', 'msg_1', 'accepted', '{}', CURRENT_TIMESTAMP)",
    "INSERT INTO runs (event_id, flow_id, flow_version_id, status, attempts, created_at, "
    "replays, deal_ref, invoice_ref, customer_tax_id) VALUES (1, 1, 1, 'succeeded', 1, "
    "CURRENT_TIMESTAMP, 0, 'D-1', 'F2026-00001', 'B12345674')",
)


def keys(engine: sa.Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, name, value FROM run_keys ORDER BY name"))
        return [tuple(row) for row in rows]


def test_0009_moves_run_keys_to_rows_and_gives_every_event_its_source(blank_url):  # noqa: F811
    migrate.upgrade(blank_url, "0008")
    engine = make_engine(blank_url)
    try:
        with engine.begin() as conn:
            for statement in ROWS:
                conn.execute(sa.text(statement))

        migrate.upgrade(blank_url)

        assert keys(engine) == [
            (1, "customer_tax_id", "B12345674"),
            (1, "deal_ref", "D-1"),
            (1, "invoice_ref", "F2026-00001"),
        ]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT source FROM events")).scalar() == "subscription:1"
            assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 1
        command.downgrade(migrate.alembic_config(blank_url), "0008")
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT deal_ref, invoice_ref, customer_tax_id FROM runs"))
            assert tuple(row.one()) == ("D-1", "F2026-00001", "B12345674")
        migrate.upgrade(blank_url)
        assert len(keys(engine)) == 3
    finally:
        engine.dispose()
