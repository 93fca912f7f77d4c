"""AI agents, their activities and the world-evolution log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    text,
)
from sqlalchemy.orm import (
    DynamicMapped,
    Mapped,
    mapped_column,
    relationship,
)

from voxeldb.meta._base import EMPTY_JSON, Base, TimestampMixin, uuid_pk

if TYPE_CHECKING:
    pass

__all__ = [
    "AIAgent",
    "AIAgentActivity",
    "WorldEvolutionLog",
]


class AIAgent(TimestampMixin, Base):
    __tablename__ = "ai_agents"

    id: Mapped[uuid.UUID] = uuid_pk()
    agent_name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    agent_type: Mapped[str] = mapped_column(String(50), default="generic", server_default="generic")
    configuration: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    memory_state: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_active_at: Mapped[datetime | None]

    activities: DynamicMapped[AIAgentActivity] = relationship(
        back_populates="agent", lazy="dynamic", passive_deletes=True
    )


class AIAgentActivity(Base):
    __tablename__ = "ai_agent_activities"

    id: Mapped[uuid.UUID] = uuid_pk()
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    world_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    activity_type: Mapped[str] = mapped_column(String(50))
    activity_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    results: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    status: Mapped[str] = mapped_column(String(20), default="completed", server_default="completed")
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    completed_at: Mapped[datetime | None]
    # The world journal's seqs (exclusive, inclusive] of the block edits made under it.
    journal_from: Mapped[int | None] = mapped_column(BigInteger)
    journal_to: Mapped[int | None] = mapped_column(BigInteger)

    agent: Mapped[AIAgent] = relationship(back_populates="activities")

    # Activity time: "what happened lately" overall, per agent and per world.
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "agent_id", "created_at"),
        Index(None, "world_id", "created_at"),
    )


class WorldEvolutionLog(Base):
    __tablename__ = "world_evolution_log"

    id: Mapped[uuid.UUID] = uuid_pk()
    world_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ai_agents.id", ondelete="SET NULL"), index=True
    )
    evolution_type: Mapped[str] = mapped_column(String(50))
    changes_made: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    impact_score: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    # The world journal's seqs (exclusive, inclusive] of the block edits made under it.
    journal_from: Mapped[int | None] = mapped_column(BigInteger)
    journal_to: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "world_id", "created_at"),)
