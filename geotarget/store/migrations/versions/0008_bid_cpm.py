"""offers' bid price on exchanges (OpenRTB)

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.add_column(sa.Column('bid_cpm', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('bid_cpm')
