"""products and lines say whether they are a service: recargo de equivalencia is only charged
on deliveries of goods (art. 154 Ley 37/1992)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 15:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('products', 'invoice_lines'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('service', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in ('invoice_lines', 'products'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('service')
