"""offers' pacing of their daily budget

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.add_column(sa.Column('pacing', sa.String(length=16), nullable=False, server_default='asap'))


def downgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('pacing')
