"""Branching stories and the choices characters make in them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.orm import (
    Mapped,
    mapped_column,
    relationship,
    validates,
)

from voxeldb.meta._base import EMPTY_JSON, Base, TimestampMixin, uuid_pk
from voxeldb.meta._rules import check_json_object, model_rule

if TYPE_CHECKING:
    from voxeldb.meta._characters import Character
    from voxeldb.meta._worlds import World

__all__ = [
    "Story",
    "StoryChoice",
    "StoryProgress",
]


class Story(TimestampMixin, Base):
    __tablename__ = "stories"

    id: Mapped[uuid.UUID] = uuid_pk()
    world_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("worlds.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    story_type: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    branching_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    narrative_threads: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=EMPTY_JSON
    )
    ai_evolution: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))

    world: Mapped[World] = relationship(back_populates="stories")
    choices: Mapped[list[StoryChoice]] = relationship(
        back_populates="story",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StoryChoice.choice_order",
    )

    @validates("branching_data", "narrative_threads", "ai_evolution")
    def _check_json(self, key: str, value: Any) -> dict[str, Any]:
        # The graph itself is checked by voxeldb.services (start_story, set_story_graph):
        # a story may hold any JSON object until it is played.
        return model_rule(key, check_json_object, value)  # type: ignore[no-any-return]

    # GIN (jsonb_path_ops: containment @> only, smaller and faster than the default opclass)
    # on PostgreSQL; SQLite has no JSON index worth having, so the indexes are not made there.
    __table_args__ = (
        Index(
            None,
            "branching_data",
            postgresql_using="gin",
            postgresql_ops={"branching_data": "jsonb_path_ops"},
            info={"dialects": ("postgresql",)},
        ).ddl_if(dialect="postgresql"),
        Index(
            None,
            "narrative_threads",
            postgresql_using="gin",
            postgresql_ops={"narrative_threads": "jsonb_path_ops"},
            info={"dialects": ("postgresql",)},
        ).ddl_if(dialect="postgresql"),
    )


class StoryChoice(Base):
    __tablename__ = "story_choices"

    id: Mapped[uuid.UUID] = uuid_pk()
    story_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    character_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL"), index=True
    )
    choice_text: Mapped[str] = mapped_column(Text)
    choice_order: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    consequences: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))

    story: Mapped[Story] = relationship(back_populates="choices")
    character: Mapped[Character | None] = relationship()

    __table_args__ = (Index(None, "story_id", "choice_order"),)


class StoryProgress(Base):
    """Where a character stands in a story: the node it is at, and how many choices it made.

    One row per (story, character), written by ``voxeldb.services.start_story`` and
    ``choose`` (docs/playing.md).
    """

    __tablename__ = "story_progress"

    story_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True
    )
    character_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    node: Mapped[str] = mapped_column(String(100))
    steps: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    started_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
