"""generic run keys, events from any source (subscription, connection, outbox, poll), poll
cursors, and the connection a flow listens on

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connector.migrate import drop_columns

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEYS = ('deal_ref', 'invoice_ref', 'customer_tax_id')


def upgrade() -> None:
    op.create_table(
        'run_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_keys_run_id_runs')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_keys')),
        sa.UniqueConstraint('run_id', 'name', 'value', name=op.f('uq_run_keys_run_id_name_value')),
    )
    op.create_index('ix_run_keys_name_value', 'run_keys', ['name', 'value'], unique=False)
    for name in OLD_KEYS:  # the columns' values move to rows
        op.execute(
            f"INSERT INTO run_keys (run_id, name, value) SELECT id, '{name}', {name} "
            f"FROM runs WHERE {name} IS NOT NULL AND {name} <> ''"
        )
    for name in OLD_KEYS:
        op.drop_index(f'ix_runs_{name}', table_name='runs')
    drop_columns(op, 'runs', *OLD_KEYS)

    # Events come from subscriptions, connections, the outbox and polls: unique per source.
    # SQLite rebuilds the table (a NOT NULL goes): migrations/env.py keeps the runs pointing
    # at it out of the way.
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=80), nullable=True))
        batch_op.alter_column('subscription_id', existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE events SET source = 'subscription:' || subscription_id")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('source', existing_type=sa.String(length=80), nullable=False)
        batch_op.drop_constraint('uq_events_subscription_id_dedup_key', type_='unique')
        batch_op.create_unique_constraint(
            op.f('uq_events_source_trigger_key_dedup_key'), ['source', 'trigger_key', 'dedup_key']
        )

    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection', sa.String(length=80), nullable=True))
        batch_op.create_index(batch_op.f('ix_flows_connection'), ['connection'], unique=False)

    op.create_table(
        'trigger_states',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('state', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_states')),
        sa.UniqueConstraint('name', name=op.f('uq_trigger_states_name')),
    )


def downgrade() -> None:
    op.drop_table('trigger_states')
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flows_connection'))
    drop_columns(op, 'flows', 'connection')
    op.execute("DELETE FROM events WHERE subscription_id IS NULL AND id NOT IN (SELECT event_id FROM runs)")
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_events_source_trigger_key_dedup_key', type_='unique')
        batch_op.create_unique_constraint(
            'uq_events_subscription_id_dedup_key', ['subscription_id', 'dedup_key']
        )
        batch_op.drop_column('source')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deal_ref', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('invoice_ref', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('customer_tax_id', sa.String(length=30), nullable=True))
    for name in OLD_KEYS:
        op.execute(
            f"UPDATE runs SET {name} = (SELECT max(value) FROM run_keys "
            f"WHERE run_keys.run_id = runs.id AND run_keys.name = '{name}')"
        )
        op.create_index(f'ix_runs_{name}', 'runs', [name], unique=False)
    op.drop_table('run_keys')
