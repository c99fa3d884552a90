"""the invoicing system's event log (registro de eventos), chained by hash

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 15:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sif_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('detail', database.JSONType, nullable=False),
        sa.Column('occurred_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('previous_hash', sa.String(length=64), nullable=True),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sif_events')),
        sa.UniqueConstraint('sequence', name=op.f('uq_sif_events_sequence')),
    )


def downgrade() -> None:
    op.drop_table('sif_events')
