"""The world journal (issue 10): ``world_journal``, ``world_journal_heads``, and the journal
range of agent activities.

On PostgreSQL ``world_journal`` is range-partitioned by ``logged_at`` (one partition a day,
made ahead by ``voxeldb.chunks._journal_sql.ensure_partitions``, plus a default partition),
so that pruning drops whole partitions. On SQLite it is an ordinary table. docs/journal.md.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "world_journal",
        sa.Column("world_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chunk_x", sa.Integer(), nullable=False),
        sa.Column("chunk_z", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("edits", sa.LargeBinary(), nullable=True),
        sa.Column("prior", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("world_id", "seq", "logged_at", name=op.f("pk_world_journal")),
        postgresql_partition_by="RANGE (logged_at)",
    )
    op.create_index(
        "ix_world_journal_area",
        "world_journal",
        ["world_id", "chunk_x", "chunk_z", "logged_at"],
        unique=False,
    )
    op.create_index(
        "ix_world_journal_actor", "world_journal", ["world_id", "actor", "logged_at"], unique=False
    )
    op.create_table(
        "world_journal_heads",
        sa.Column("world_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("world_id", name=op.f("pk_world_journal_heads")),
    )
    for table in ("ai_agent_activities", "world_evolution_log"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("journal_from", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("journal_to", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Encoded chunks are LZ4 already: no second compression of the prior bytes.
        op.execute("ALTER TABLE world_journal ALTER COLUMN prior SET STORAGE EXTERNAL")
        op.execute("CREATE TABLE world_journal_default PARTITION OF world_journal DEFAULT")
        from voxeldb.chunks._journal_sql import create_partitions

        create_partitions(bind, days_back=1, days_ahead=8)


def downgrade() -> None:
    for table in ("ai_agent_activities", "world_evolution_log"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("journal_to")
            batch.drop_column("journal_from")
    op.drop_table("world_journal_heads")
    op.drop_index("ix_world_journal_actor", table_name="world_journal")
    op.drop_index("ix_world_journal_area", table_name="world_journal")
    op.drop_table("world_journal")
