"""The relational side of voxeldb: users, worlds, characters, stories, agents (CONTRACT §5)."""

from __future__ import annotations

from voxeldb.meta._base import Base
from voxeldb.meta._health import check_database_health
from voxeldb.meta._models import (
    AIAgent,
    AIAgentActivity,
    BlockState,
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    StoryChoice,
    User,
    UserSession,
    World,
    WorldChunk,
    WorldEvolutionLog,
)
from voxeldb.meta._session import SessionLocal, configure, get_engine

__all__ = [
    "AIAgent",
    "AIAgentActivity",
    "Base",
    "BlockState",
    "Character",
    "CharacterRelationship",
    "InventoryItem",
    "SessionLocal",
    "Story",
    "StoryChoice",
    "User",
    "UserSession",
    "World",
    "WorldChunk",
    "WorldEvolutionLog",
    "check_database_health",
    "configure",
    "get_engine",
]
