"""The block-state registry token: one random bigint per world (``block_state_tokens``).

Replaced in the transaction that registers a new block state, and read by every registry
operation: a process keys its memo of a world's registry by it, so that after a database is
restored from a backup no process decodes ids with names it learned from the lost registry
(docs/schema.md, docs/caching.md). Every existing world gets a token here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 17:15:00
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "block_state_tokens",
        sa.Column("world_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["world_id"],
            ["worlds.id"],
            name=op.f("fk_block_state_tokens_world_id_worlds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("world_id", name=op.f("pk_block_state_tokens")),
    )
    bind = op.get_bind()
    worlds = sa.table("worlds", sa.column("id", sa.Uuid()))
    tokens = sa.table(
        "block_state_tokens", sa.column("world_id", sa.Uuid()), sa.column("token", sa.BigInteger())
    )
    ids = bind.execute(sa.select(worlds.c.id)).scalars().all()
    if ids:
        # The same range as voxeldb._ids.fresh_version.
        bind.execute(
            tokens.insert(),
            [{"world_id": wid, "token": (1 << 62) | secrets.randbits(62)} for wid in ids],
        )


def downgrade() -> None:
    op.drop_table("block_state_tokens")
