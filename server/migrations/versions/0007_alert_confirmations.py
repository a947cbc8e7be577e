"""alert confirmations: who wrote the version awaiting confirmation, and a change to an alert in
force that waits for a second person (two-person rule, docs/alerts.md)

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-05 05:00:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authors', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('proposal', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('proposal')
        batch_op.drop_column('authors')
