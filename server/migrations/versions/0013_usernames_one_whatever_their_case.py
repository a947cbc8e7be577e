"""usernames one whatever their case: a unique index on lower(username)

Refuses to run, naming them, while two users' names differ only in case: the operator renames
one of each pair (the older versions of Cunping allowed them) and runs the upgrade again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 06:20:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    clashes = op.get_bind().execute(sa.text(
        "SELECT lower(username) AS name, count(*) AS n FROM users "
        "GROUP BY lower(username) HAVING count(*) > 1 ORDER BY 1")).all()
    if clashes:
        names = ", ".join(f"{name} ({n} users)" for name, n in clashes)
        raise RuntimeError(
            "Usernames are now one whatever their case, and these names are held by several "
            f"users each: {names}. Rename all but one of each (UPDATE users SET username = "
            "'...' WHERE id = ...), then run `cunping db upgrade` again.")
    op.create_index('uq_users_username_lower', 'users', [sa.text('lower(username)')],
                    unique=True)


def downgrade():
    op.drop_index('uq_users_username_lower', table_name='users')
