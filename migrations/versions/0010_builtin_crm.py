"""the built-in CRM: companies, contacts, opportunities and their lines

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import database

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'crm_companies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('tax_id', sa.String(length=30), nullable=True),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('street', sa.String(length=200), nullable=True),
        sa.Column('postal_code', sa.String(length=20), nullable=True),
        sa.Column('city', sa.String(length=100), nullable=True),
        sa.Column('province', sa.String(length=100), nullable=True),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_companies')),
    )
    op.create_table(
        'crm_contacts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('phone', sa.String(length=40), nullable=True),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['company_id'], ['crm_companies.id'], name=op.f('fk_crm_contacts_company_id_crm_companies')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_contacts')),
    )
    op.create_index(op.f('ix_crm_contacts_company_id'), 'crm_contacts', ['company_id'], unique=False)
    op.create_table(
        'opportunities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('owner_name', sa.String(length=120), nullable=True),
        sa.Column('owner_email', sa.String(length=254), nullable=True),
        sa.Column('campaign', sa.String(length=120), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('expected_close', sa.Date(), nullable=True),
        sa.Column('won_at', database.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['company_id'], ['crm_companies.id'], name=op.f('fk_opportunities_company_id_crm_companies')),
        sa.ForeignKeyConstraint(['contact_id'], ['crm_contacts.id'], name=op.f('fk_opportunities_contact_id_crm_contacts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunities')),
    )
    op.create_index(op.f('ix_opportunities_company_id'), 'opportunities', ['company_id'], unique=False)
    op.create_index(op.f('ix_opportunities_stage'), 'opportunities', ['stage'], unique=False)
    op.create_table(
        'opportunity_lines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('opportunity_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=True),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('quantity', database.DecimalType(20, 8), nullable=False),
        sa.Column('unit_price', database.DecimalType(20, 8), nullable=False),
        sa.Column('discount_percent', database.DecimalType(7, 4), nullable=False),
        sa.Column('tax_rate', database.DecimalType(7, 4), nullable=False),
        sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_lines_opportunity_id_opportunities')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_lines')),
    )
    op.create_index(op.f('ix_opportunity_lines_opportunity_id'), 'opportunity_lines', ['opportunity_id'], unique=False)


def downgrade() -> None:
    op.drop_table('opportunity_lines')
    op.drop_table('opportunities')
    op.drop_table('crm_contacts')
    op.drop_table('crm_companies')
