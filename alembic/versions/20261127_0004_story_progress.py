"""Story progress: where each character stands in each story it plays (issue 13).

One row per (story, character): the node it is at and how many choices it made there,
written by ``voxeldb.services.start_story`` and ``choose`` (docs/playing.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "story_progress",
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("character_id", sa.Uuid(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("steps", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_story_progress_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name="fk_story_progress_story_id_stories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("story_id", "character_id", name="pk_story_progress"),
    )
    op.create_index(
        "ix_story_progress_character_id", "story_progress", ["character_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_story_progress_character_id", table_name="story_progress")
    op.drop_table("story_progress")
