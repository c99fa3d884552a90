"""VERI*FACTU records say their mode, the AEAT's error, and which record they correct; an
issuer says whether art. 4.2 lets it issue simplified invoices up to 3,000 €; a customer who is
a person may give their name and surnames apart

A record is made in VERI*FACTU mode (sent to the AEAT, its test or production environment) or
in "no VERI*FACTU" mode (kept); the mode decides its QR. A record the AEAT refused is corrected
by a new record of the same invoice (subsanación, a resent anulación), so an invoice may now
have several records of a kind: the newest is the one that counts.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 14:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        # A person's given name and surnames apart, for Facturae (never guessed from the name).
        for column in ('given_name', 'first_surname', 'second_surname'):
            batch_op.add_column(sa.Column(column, sa.String(length=120), nullable=True))
    with op.batch_alter_table('issuers', schema=None) as batch_op:
        # Simplified invoices above 400 € only for a business art. 4.2 RD 1619/2012 covers.
        batch_op.add_column(sa.Column('simplified_art_4_2', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('verifactu_records', schema=None) as batch_op:
        # Every record made so far was queued for the AEAT: VERI*FACTU, production QR.
        batch_op.add_column(sa.Column('mode', sa.String(length=12), nullable=False, server_default='verifactu'))
        batch_op.add_column(sa.Column('aeat_tests', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('subsanacion', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('rechazo_previo', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('sin_registro_previo', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('corrects_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('error_code', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('error_description', sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_verifactu_records_corrects_id_verifactu_records'),
            'verifactu_records', ['corrects_id'], ['id'],
        )
        batch_op.drop_constraint('uq_verifactu_records_invoice_id_kind', type_='unique')
        batch_op.create_index('ix_verifactu_records_invoice_id_kind', ['invoice_id', 'kind'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        for column in ('second_surname', 'first_surname', 'given_name'):
            batch_op.drop_column(column)
    with op.batch_alter_table('issuers', schema=None) as batch_op:
        batch_op.drop_column('simplified_art_4_2')
    with op.batch_alter_table('verifactu_records', schema=None) as batch_op:
        batch_op.drop_index('ix_verifactu_records_invoice_id_kind')
        batch_op.create_unique_constraint('uq_verifactu_records_invoice_id_kind', ['invoice_id', 'kind'])
        batch_op.drop_constraint(batch_op.f('fk_verifactu_records_corrects_id_verifactu_records'), type_='foreignkey')
        for column in ('error_description', 'error_code', 'corrects_id', 'sin_registro_previo',
                       'rechazo_previo', 'subsanacion', 'aeat_tests', 'mode'):
            batch_op.drop_column(column)
