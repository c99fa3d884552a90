"""connections get a provider type, its settings, the account they route events by, their own
inbound address and OAuth 2 token state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 12:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nothing references connections by foreign key, so SQLite may rebuild the table (batch
    # mode) to add the unique constraint; existing rows are plain HTTP connections.
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('type', sa.String(length=30), nullable=False, server_default='http'))
        batch_op.add_column(sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('account_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('inbound_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('access_token_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('access_token_expires_at', database.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_connections_account_id'), ['account_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_connections_inbound_token'), ['inbound_token'])


def downgrade() -> None:
    # A rebuild on SQLite too: it cannot drop a column that has a unique constraint in place.
    with op.batch_alter_table('connections', schema=None, recreate='always') as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_connections_inbound_token'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_connections_account_id'))
        for column in ('access_token_expires_at', 'access_token_encrypted', 'inbound_token',
                       'account_id', 'settings', 'type'):
            batch_op.drop_column(column)
