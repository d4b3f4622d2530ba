"""offers' creative variants and how they rotate

Revision ID: 0012
Revises: 0011
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.add_column(sa.Column('variants', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('rotation', sa.String(length=16), nullable=False, server_default='even'))


def downgrade() -> None:
    with op.batch_alter_table('offers') as batch:
        batch.drop_column('rotation')
        batch.drop_column('variants')
