"""indexes for a county of 100,000 notices and 10,000 screens

The notice list pages newest first (the page's ids from an index-only scan), filters by status, by the category of the current revision and
searches its title (index-only scans of narrow indexes instead of reading every revision's
body); the review queue and the scheduler look revisions up by state (every tick); notices
are joined to their live and pending revisions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_status_updated_at', ['status', 'updated_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_notices_updated_at_id', ['updated_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_live_revision_id'), ['live_revision_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_notices_pending_revision_id'),
                              ['pending_revision_id'], unique=False)
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revisions_state'), ['state'], unique=False)
        batch_op.create_index('ix_revisions_category_id_id', ['category_id', 'id'], unique=False)
        batch_op.create_index('ix_revisions_title_id', ['title', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_index('ix_revisions_title_id')
        batch_op.drop_index('ix_revisions_category_id_id')
        batch_op.drop_index(batch_op.f('ix_revisions_state'))
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notices_pending_revision_id'))
        batch_op.drop_index(batch_op.f('ix_notices_live_revision_id'))
        batch_op.drop_index('ix_notices_updated_at_id')
        batch_op.drop_index('ix_notices_status_updated_at')
