"""Usernames and e-mails unique whatever their case: unique indexes on lower(...).

"alice" and "ALICE" are one user, and so are two spellings of one e-mail address
(docs/security.md). The upgrade refuses, naming them, when the table already holds such
pairs: which of the two accounts to keep is the operator's decision, not a migration's.

SQLite cannot reflect expression indexes, so a later batch migration (a table rebuild) of
``users`` must create these two again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refuse_duplicates(column: str) -> None:
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT lower({column}) AS folded, count(*) AS n FROM users "
                f"GROUP BY lower({column}) HAVING count(*) > 1 ORDER BY 1 LIMIT 10"
            )
        )
        .all()
    )
    if rows:
        names = ", ".join(f"{row.folded!r} ({row.n} users)" for row in rows)
        raise RuntimeError(
            f"users differing only in the case of their {column} exist: {names}; "
            f"rename or merge them, then run the migration again"
        )


def upgrade() -> None:
    _refuse_duplicates("username")
    _refuse_duplicates("email")
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("uq_users_username_lower", table_name="users")
