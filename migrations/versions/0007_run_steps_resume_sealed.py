"""a step keeps the output later steps read, sealed, when its logged copy is masked or cut

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 06:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connector.migrate import drop_columns

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('run_steps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_sealed', sa.Text(), nullable=True))


def downgrade() -> None:
    drop_columns(op, 'run_steps', 'resume_sealed')
