"""flow owners and failure notifications

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 06:15:42.452100
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_flows_owner_id_users'), 'users', ['owner_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify', sa.String(length=10), nullable=False, server_default='immediate'))
        batch_op.add_column(sa.Column('notified_event_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('digest_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('digest_on')
        batch_op.drop_column('notified_event_id')
        batch_op.drop_column('notify')

    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_flows_owner_id_users'), type_='foreignkey')
        batch_op.drop_column('owner_id')

