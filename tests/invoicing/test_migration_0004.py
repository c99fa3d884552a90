"""Migration 0004 on a database that already holds invoices, on SQLite and PostgreSQL.

The suite's databases are migrated while empty; this upgrades one that holds a customer, a
draft with its IVA row and a product from 0003, then downgrades and upgrades it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from connector import migrate
from database import make_engine
from invoicing.models import Customer, Invoice, Product
from tests.conftest import BACKENDS, POSTGRES_URL, _with_search_path

D = Decimal


@pytest.fixture(params=BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, not migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    schema = f"puente_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


ROWS = (
    "INSERT INTO customers (tax_id, tax_id_kind, country, name, created_at) "
    "VALUES ('B12345674', 'CIF', 'ES', 'Acme Soluciones SL', CURRENT_TIMESTAMP)",
    "INSERT INTO invoices (kind, status, customer_id, currency, invoice_type, paid_total, "
    "base_total, tax_total, total, created_at) VALUES ('invoice', 'draft', 1, 'EUR', 'F1', "
    "'0.00', '100.00', '21.00', '121.00', CURRENT_TIMESTAMP)",
    "INSERT INTO invoice_lines (invoice_id, position, description, quantity, unit_price, "
    "discount_percent, tax_rate, gross, discount, base) VALUES (1, 1, 'Tijeras', '10.00000000', "
    "'10.00000000', '0.0000', '21.0000', '100.00', '0.00', '100.00')",
    "INSERT INTO invoice_taxes (invoice_id, rate, base, amount) "
    "VALUES (1, '21.0000', '100.00', '21.00')",
    "INSERT INTO products (sku, name, unit_price, tax_rate, active, created_at, updated_at) "
    "VALUES ('TIJ', 'Tijeras', '10.00000000', '21.0000', true, CURRENT_TIMESTAMP, "
    "CURRENT_TIMESTAMP)",
)


def read_back(engine: sa.Engine) -> tuple[object, ...]:
    with Session(engine) as s:
        customer = s.get_one(Customer, 1)
        invoice = s.get_one(Invoice, 1)
        product = s.get_one(Product, 1)
        [tax] = invoice.taxes
        return (
            (customer.equivalence_surcharge, customer.payment_days),
            (invoice.discount_percent, invoice.discount_total, invoice.surcharge_total),
            (invoice.withholding_total, invoice.amount_due, invoice.due_date),
            (tax.surcharge_rate, tax.surcharge_amount, invoice.lines[0].withholding_rate),
            (invoice.withholdings, product.withholding_rate),
        )


def test_0004_upgrades_and_downgrades_a_database_holding_invoices(blank_url):
    migrate.upgrade(blank_url, "0003")
    engine = make_engine(blank_url)
    try:
        with engine.begin() as conn:
            for statement in ROWS:
                conn.execute(sa.text(statement))

        migrate.upgrade(blank_url)

        # Every existing row reads as it was: no surcharge, no withholding, due on issue.
        expected = (
            (False, 0),
            (D("0.0000"), D("0.00"), D("0.00")),
            (D("0.00"), D("121.00"), None),
            (None, D("0.00"), None),
            ([], None),
        )
        assert read_back(engine) == expected
        command.downgrade(migrate.alembic_config(blank_url), "0003")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("invoices")}
        assert not columns & {"discount_percent", "surcharge_total", "withholding_total"}
        assert "invoice_withholdings" not in sa.inspect(engine).get_table_names()
        migrate.upgrade(blank_url)
        assert read_back(engine) == expected
    finally:
        engine.dispose()
