"""events keep the integration they arrived on (scope): a deal is unique within it, never by
the source its payload names; deals' and invoices' sources grow to hold "hubspot@connection:<name>"

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 18:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=100), nullable=True))
    for table in ('deals', 'invoices'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                'source', existing_type=sa.String(length=40), type_=sa.String(length=140)
            )


def downgrade() -> None:
    for table in ('invoices', 'deals'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                'source', existing_type=sa.String(length=140), type_=sa.String(length=40)
            )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('scope')
