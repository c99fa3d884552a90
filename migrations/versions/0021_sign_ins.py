"""sign-ins kept on the server: signing out ends one for good, a new password or a disabled
account ends them all (replaces users.session_epoch)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 18:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database


revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sign_ins',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sign_ins_user_id', 'sign_ins', ['user_id'])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0')
        )
    op.drop_index('ix_sign_ins_user_id', table_name='sign_ins')
    op.drop_table('sign_ins')
