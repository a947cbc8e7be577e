"""pairing address: where a pairing request came from, for the per-address cap and rate

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 05:55:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pairing_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip', sa.String(length=45), nullable=False,
                                      server_default=''))
        batch_op.create_index(batch_op.f('ix_pairing_requests_ip'), ['ip'], unique=False)


def downgrade():
    with op.batch_alter_table('pairing_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pairing_requests_ip'))
        batch_op.drop_column('ip')
