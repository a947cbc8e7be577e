"""release on approval and a time budget: a revision may be held after approval (the editor
publishes it by hand), and a notice (or its category) may set how long it holds a screen in one
rotation; notice codes looked up whatever their case; when a screen took an ended alert down

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 09:10:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('budget_s', sa.Integer(), nullable=True))
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_s', sa.Integer(), nullable=True))
    op.create_index('ix_notices_code_lower', 'notices', [sa.text('lower(code)')])
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cleared_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_column('cleared_at')
    op.drop_index('ix_notices_code_lower', table_name='notices')
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_column('budget_s')
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_column('budget_s')
        batch_op.drop_column('hold')
