"""offers.redemption and unique redemption codes

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('offers', sa.Column('redemption', sa.JSON(), nullable=True))
    op.create_table('redemption_codes',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('offer_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('impression_id', sa.String(length=40), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_index('ix_redemption_codes_merchant', 'redemption_codes', ['merchant_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_redemption_codes_merchant', table_name='redemption_codes')
    op.drop_table('redemption_codes')
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('redemption')
