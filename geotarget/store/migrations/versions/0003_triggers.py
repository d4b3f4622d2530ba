"""triggers: offers.trigger and webhook subscriptions

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('offers', sa.Column('trigger', sa.JSON(), nullable=True))
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('geofence_ids', sa.JSON(), nullable=True),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhooks_owner', 'webhooks', ['owner', 'owner_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhooks_owner', table_name='webhooks')
    op.drop_table('webhooks')
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('trigger')
