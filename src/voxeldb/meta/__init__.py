"""The relational side of voxeldb: users, worlds, characters, stories, agents.

The ORM models on one declarative base, ``SessionLocal``, the seed's
``check_database_health()``, the password policy, and the Alembic migrations that build the
schema. Sits on ``voxeldb.chunks`` (``WorldChunk`` stores the codec's bytes); never imports
``services``, ``ops`` or ``cli``.
"""

from __future__ import annotations

from voxeldb.meta._agents import AIAgent, AIAgentActivity, WorldEvolutionLog
from voxeldb.meta._base import Base
from voxeldb.meta._characters import Character, CharacterRelationship, InventoryItem
from voxeldb.meta._health import check_database_health, count_rows, table_stats
from voxeldb.meta._migrations import (
    alembic_config,
    configure_kwargs,
    current,
    downgrade,
    head_revision,
    pending_changes,
    script_location,
    sqlite_foreign_keys_off,
    upgrade,
)
from voxeldb.meta._passwords import validate_password
from voxeldb.meta._rules import (
    EMAIL_PATTERN,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    USERNAME_PATTERN,
    check_email,
    check_json_object,
    check_number_map,
    check_position,
    check_text,
)
from voxeldb.meta._session import SessionLocal, configure, get_engine, write_lock
from voxeldb.meta._stories import Story, StoryChoice, StoryProgress
from voxeldb.meta._users import User, UserSession
from voxeldb.meta._worlds import JOURNAL_ACTOR, BlockState, World, WorldChunk

__all__ = [
    "EMAIL_PATTERN",
    "JOURNAL_ACTOR",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "USERNAME_PATTERN",
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
    "StoryProgress",
    "User",
    "UserSession",
    "World",
    "WorldChunk",
    "WorldEvolutionLog",
    "alembic_config",
    "check_database_health",
    "check_email",
    "check_json_object",
    "check_number_map",
    "check_position",
    "check_text",
    "configure",
    "configure_kwargs",
    "count_rows",
    "current",
    "downgrade",
    "get_engine",
    "head_revision",
    "pending_changes",
    "script_location",
    "sqlite_foreign_keys_off",
    "table_stats",
    "upgrade",
    "validate_password",
    "write_lock",
]
