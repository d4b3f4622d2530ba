"""offers' impression goals over a date range

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.add_column(sa.Column('goal', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('goal')
