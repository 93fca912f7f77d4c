"""Chunk summaries for maps (issue 11): ``world_chunks.summary``.

Per chunk, the top non-air block of each of its 256 columns and its height, written by the
chunk store in the same statement as the chunk and sealed with the row's version
(``voxeldb.chunks._summary``). Rows written before this revision have NULL: ``voxeldb map``
decodes those chunks, and ``voxeldb map --rebuild-summaries`` fills them in.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("world_chunks", sa.Column("summary", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("world_chunks") as batch:
        batch.drop_column("summary")
