"""api key rotation, expiry, revocation and last use

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_COLUMNS = ('previous_valid_until', 'expires_at', 'revoked_at', 'last_used_at')


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('previous_hash', sa.String(length=64), nullable=True))
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint('uq_api_keys_previous_hash', ['previous_hash'])


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_constraint('uq_api_keys_previous_hash', type_='unique')
        for name in ('previous_hash', *_COLUMNS):
            batch.drop_column(name)
