"""feedback form nonce: each served form is sent at most once

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:50:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('form_nonce', sa.String(length=24), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_feedback_form_nonce'), ['form_nonce'])


def downgrade():
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_feedback_form_nonce'), type_='unique')
        batch_op.drop_column('form_nonce')
