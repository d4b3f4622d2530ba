"""audiences

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audiences',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('rule', sa.JSON(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('suppressed', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audiences_merchant', 'audiences', ['merchant_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audiences_merchant', table_name='audiences')
    op.drop_table('audiences')
