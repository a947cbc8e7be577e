"""scan clients: a hash of who scanned, so the same phone within half an hour is one scan

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 05:45:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client', sa.String(length=16), nullable=False,
                                      server_default=''))


def downgrade():
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.drop_column('client')
