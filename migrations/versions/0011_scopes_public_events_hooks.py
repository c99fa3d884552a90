"""API key scopes, public events and REST hooks

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:37:03.622120
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database
from connector.migrate import drop_columns

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql')

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('public_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('origin', sa.String(length=120), nullable=False),
        sa.Column('data', JSON, nullable=False),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_public_events')),
        sa.UniqueConstraint('origin', name=op.f('uq_public_events_origin'))
    )
    with op.batch_alter_table('public_events', schema=None) as batch_op:
        batch_op.create_index('ix_public_events_type_id', ['type', 'id'], unique=False)

    op.create_table('hook_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('target_url', sa.String(length=2000), nullable=False),
        sa.Column('secret_encrypted', sa.Text(), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', database.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ended_reason', sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_hook_subscriptions_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hook_subscriptions'))
    )
    with op.batch_alter_table('hook_subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_hook_subscriptions_event_active', ['event', 'active'], unique=False)

    op.create_table('hook_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claims', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['public_events.id'], name=op.f('fk_hook_deliveries_event_id_public_events')),
        sa.ForeignKeyConstraint(['subscription_id'], ['hook_subscriptions.id'], name=op.f('fk_hook_deliveries_subscription_id_hook_subscriptions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hook_deliveries')),
        sa.UniqueConstraint('subscription_id', 'event_id', name=op.f('uq_hook_deliveries_subscription_id_event_id'))
    )
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_hook_deliveries_status_next', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_hook_deliveries_subject', ['subscription_id', 'subject', 'id'], unique=False)

    op.create_table('hook_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('attempted_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['hook_deliveries.id'], name=op.f('fk_hook_attempts_delivery_id_hook_deliveries')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hook_attempts'))
    )
    with op.batch_alter_table('hook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hook_attempts_delivery_id'), ['delivery_id'], unique=False)

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', JSON, nullable=True))
    # Keys made before scopes existed were all admin keys: they keep every scope.
    op.execute("UPDATE api_keys SET scopes = '[\"read\", \"write\", \"admin\"]'")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.alter_column('scopes', existing_type=JSON, nullable=False)
    drop_columns(op, 'api_keys', 'role')


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.VARCHAR(length=20), nullable=False, server_default='admin'))
    drop_columns(op, 'api_keys', 'scopes')

    with op.batch_alter_table('hook_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hook_attempts_delivery_id'))

    op.drop_table('hook_attempts')
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_hook_deliveries_subject')
        batch_op.drop_index('ix_hook_deliveries_status_next')

    op.drop_table('hook_deliveries')
    with op.batch_alter_table('hook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_hook_subscriptions_event_active')

    op.drop_table('hook_subscriptions')
    with op.batch_alter_table('public_events', schema=None) as batch_op:
        batch_op.drop_index('ix_public_events_type_id')

    op.drop_table('public_events')
