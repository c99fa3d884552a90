"""runs are listed by status newest first from an index on (status, id), which replaces
(status, deadline_at): the sweeper, its only other reader, used just its status part

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 23:50:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The new index first: status filters always have one.
    op.create_index('ix_runs_status_id', 'runs', ['status', 'id'], unique=False)
    op.drop_index('ix_runs_status_deadline', table_name='runs')


def downgrade() -> None:
    op.create_index('ix_runs_status_deadline', 'runs', ['status', 'deadline_at'], unique=False)
    op.drop_index('ix_runs_status_id', table_name='runs')
