"""covers and reach covers stored with their fence (computed once, never at a worker's start); fences'
external ids (a re-run import skips what it stored); offers over a chain's fences by tag or all of them

Revision ID: 0009
Revises: 0008

Fences stored before this revision get their covers computed once by the first worker that starts
(``Catalog.load_all`` stores every cover it had to compute), not here: the resolution is a setting.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.add_column(sa.Column('geofence_tags', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('all_geofences', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('geofences') as batch:
        batch.add_column(sa.Column('external_id', sa.String(128), nullable=True))
        batch.create_index('ux_geofences_external_id', ['merchant_id', 'external_id'], unique=True)
    op.create_table(
        'fence_covers',
        sa.Column('fence_id', sa.String(40), sa.ForeignKey('geofences.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('fence_version', sa.Integer(), nullable=False),
        sa.Column('res', sa.Integer(), nullable=False),
        sa.Column('interior', sa.LargeBinary(), nullable=False),
        sa.Column('boundary', sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        'reach_covers',
        sa.Column('fence_id', sa.String(40), sa.ForeignKey('geofences.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('nearby_m', sa.Float(), primary_key=True),
        sa.Column('fence_version', sa.Integer(), nullable=False),
        sa.Column('finest_res', sa.Integer(), nullable=False),
        sa.Column('cells', sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('all_geofences')
        batch.drop_column('geofence_tags')
    op.drop_table('reach_covers')
    op.drop_table('fence_covers')
    with op.batch_alter_table('geofences') as batch:
        batch.drop_index('ux_geofences_external_id')
        batch.drop_column('external_id')
