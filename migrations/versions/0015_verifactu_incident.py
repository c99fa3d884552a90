"""a VERI*FACTU record remembers whether a technical incident delayed it (Incidencia = S)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 09:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('verifactu_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Queued records a transient failure held back (those stay pending; a refused document
    # is failed) were delayed by an incident.
    op.execute(
        "UPDATE verifactu_records SET incident = (status = 'pending' AND attempts > 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table('verifactu_records', schema=None) as batch_op:
        batch_op.drop_column('incident')
