"""The ORM models: the seed's tables plus those its examples imply.

The three tables the chunk store shares (``worlds``, ``world_chunks``, ``block_states``) follow
docs/schema.md exactly; change that page, these models and a migration together.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.orm import (
    DynamicMapped,
    Mapped,
    Mapper,
    mapped_column,
    object_session,
    relationship,
)

from voxeldb._ids import fresh_version
from voxeldb._time import utcnow
from voxeldb.chunks import (
    as_coord,
    block_states_table,
    local_y,
    world_chunks_table,
    world_shape,
)
from voxeldb.errors import ChunkFormatError, CoordinateError
from voxeldb.meta._base import Base, TimestampMixin
from voxeldb.meta._passwords import check_no_password, check_password_hash, hash_password

__all__ = [
    "AIAgent",
    "AIAgentActivity",
    "BlockState",
    "Character",
    "CharacterRelationship",
    "InventoryItem",
    "Story",
    "StoryChoice",
    "User",
    "UserSession",
    "World",
    "WorldChunk",
    "WorldEvolutionLog",
]

# Raw INSERTs (the chunk store, COPY, hand-written SQL) can leave JSON columns out.
_EMPTY_JSON = text("'{}'")


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _uuid_pk()
    username: Mapped[str] = mapped_column(String(50), unique=True, index=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(60))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    auth_epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """Bumped by every password change; a login session of an older epoch is revoked."""

    characters: DynamicMapped[Character] = relationship(
        back_populates="user", lazy="dynamic", passive_deletes=True
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        """Hash ``password`` (bcrypt, policy-checked); revokes every login session of the user."""
        self.set_password_hash(hash_password(password))

    @staticmethod
    def password_hash_for(password: str) -> str:
        """A bcrypt hash of ``password`` (policy-checked) at the configured cost: made before
        a write transaction begins, since bcrypt is slow, then given to set_password_hash."""
        return hash_password(password)

    def set_password_hash(self, password_hash: str) -> None:
        """Store a hash from ``password_hash_for``; revokes every login session of the user."""
        self.password_hash = password_hash
        self.password_changed_at = utcnow()
        self.auth_epoch = (self.auth_epoch or 0) + 1

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is the user's; one bcrypt at the configured cost at least,
        whatever the stored hash (a locked account's placeholder too) or the candidate."""
        return check_password_hash(password, self.password_hash)

    @staticmethod
    def check_no_password(password: object) -> bool:
        """The answer when there is no user to check (unknown or inactive): False, in the
        time a wrong password takes."""
        return check_no_password(password)

    def __repr__(self) -> str:
        return f"User(id={self.id!s}, username={self.username!r})"


# Usernames and e-mails are unique whatever their case ("alice" and "ALICE" are one user):
# the services look users up by lower(username). Migration 0002; docs/security.md.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class UserSession(Base):
    """A logged-in user's session: only the SHA-256 of its token is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    auth_epoch: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="sessions")

    __table_args__ = (Index(None, "user_id", "expires_at"),)


class World(TimestampMixin, Base):
    __tablename__ = "worlds"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    world_settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    version: Mapped[int] = mapped_column(BigInteger, default=1, server_default=text("1"))
    """Bumped whenever the settings change (cached settings are keyed on it)."""
    evolution_state: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=_EMPTY_JSON
    )
    """The AI-driven evolution tracking: what the agents have changed so far, in summary."""
    last_evolved_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    chunks: DynamicMapped[WorldChunk] = relationship(
        back_populates="world", lazy="dynamic", passive_deletes=True
    )
    characters: DynamicMapped[Character] = relationship(
        back_populates="world", lazy="dynamic", passive_deletes=True
    )
    stories: DynamicMapped[Story] = relationship(
        back_populates="world", lazy="dynamic", passive_deletes=True
    )

    @property
    def height(self) -> int:
        return world_shape(self.world_settings)[0]

    @property
    def min_y(self) -> int:
        return world_shape(self.world_settings)[1]

    def __repr__(self) -> str:
        return f"World(id={self.id!s}, name={self.name!r})"


def _next_chunk_version(current: int | None) -> int:
    return fresh_version() if current is None else current + 1


class WorldChunk(Base):
    """A 16 x 16 column of blocks, stored as the codec's bytes (``voxeldb.chunks.codec``).

    Mapped onto ``voxeldb.chunks``' ``world_chunks`` table, the one the chunk store writes.
    """

    __table__ = world_chunks_table

    world_id: Mapped[uuid.UUID]
    chunk_x: Mapped[int]
    chunk_z: Mapped[int]
    chunk_y: Mapped[int]
    """Always 0: a chunk is a whole column (the seed addresses chunks by x, y and z)."""
    data: Mapped[bytes]
    version: Mapped[int]
    chunk_metadata: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    world: Mapped[World] = relationship(back_populates="chunks")

    # Every ORM UPDATE is "... WHERE version = <read>" and sets version + 1, the same
    # optimistic concurrency the chunk store uses: a concurrent write is a StaleDataError,
    # never a lost update, and version-tagged caches see the change.
    # A new row starts at the microsecond clock, not 1, like the chunk store's rows: a chunk
    # deleted and created again must never repeat a version an old cache entry still holds.
    __mapper_args__ = {  # noqa: RUF012
        "version_id_col": world_chunks_table.c.version,
        "version_id_generator": _next_chunk_version,
    }

    def _world(self) -> World:
        """The chunk's world, from wherever it can be had (even for a detached chunk)."""
        from sqlalchemy import inspect

        state = inspect(self)
        world: World | None = None
        if state.session is not None or "world" not in state.unloaded:
            world = self.world
        if world is None and state.session is not None:
            # A pending chunk given only world_id: relationships do not load before a flush.
            world = state.session.get(World, self.world_id)
        if world is None:
            world = _detached_world(self.world_id)
        return world

    def _local_index(
        self, world: World, local_x: int, y: int, local_z: int
    ) -> tuple[int, int, int, int]:
        height, min_y = world.height, world.min_y
        lx, lz = as_coord(local_x, "local_x"), as_coord(local_z, "local_z")
        for name, value in (("local_x", lx), ("local_z", lz)):
            if not 0 <= value < 16:
                raise CoordinateError(f"{name}={value} is outside the chunk: valid range 0..15")
        return height, local_y(y, height, min_y), lz, lx

    def _blocks(self, height: int) -> np.ndarray[Any, np.dtype[np.unsignedinteger[Any]]]:
        from voxeldb.chunks.codec import decode_chunk

        if self.data is None:
            return np.zeros((height, 16, 16), dtype=np.uint16)
        blocks = decode_chunk(self.data)
        if blocks.shape != (height, 16, 16):
            raise ChunkFormatError(
                f"chunk ({self.chunk_x}, {self.chunk_z}) holds an array of shape {blocks.shape}, "
                f"but its world is {height} blocks high: expected ({height}, 16, 16)"
            )
        return blocks

    def get_block_at(self, local_x: int, y: int, local_z: int) -> dict[str, Any]:
        """The state of the block at chunk-local ``(local_x, local_z)`` and world ``y``."""
        from voxeldb.chunks import lookup_states

        world = self._world()
        height, iy, iz, ix = self._local_index(world, local_x, y, local_z)
        state_id = int(self._blocks(height)[iy, iz, ix])
        with _registry_connection(self) as conn:
            return lookup_states(conn, world.id, [state_id])[state_id]

    def set_block_at(self, local_x: int, y: int, local_z: int, state: Any) -> None:
        """Set one block; the row's ``version`` goes up by one when the session flushes.

        ``state`` is a name (``"stone"``) or a dict with a ``"type"`` (CONTRACT §1). On a
        chunk that is not in a session the change is made in memory only (merge it into a
        session to store it); the state is still interned, since ids never change.
        """
        from voxeldb.chunks import intern_states
        from voxeldb.chunks.codec import encode_chunk

        world = self._world()
        height, iy, iz, ix = self._local_index(world, local_x, y, local_z)
        with _registry_connection(self) as conn:
            (state_id,) = intern_states(conn, world.id, [state])
        blocks = self._blocks(height)
        if state_id > np.iinfo(blocks.dtype).max:
            blocks = blocks.astype(np.uint32)
        if blocks[iy, iz, ix] == state_id and self.data is not None:
            return
        blocks = blocks.copy() if not blocks.flags.writeable else blocks
        blocks[iy, iz, ix] = state_id
        self.data = encode_chunk(blocks)

    def __repr__(self) -> str:
        return f"WorldChunk(world_id={self.world_id!s}, x={self.chunk_x}, z={self.chunk_z})"


class BlockState(Base):
    """The per-world registry of block states; written by ``voxeldb.chunks.intern_states``.

    Mapped onto ``voxeldb.chunks``' ``block_states`` table.
    """

    __table__ = block_states_table

    world_id: Mapped[uuid.UUID]
    state_id: Mapped[int]
    state_key: Mapped[str]
    state: Mapped[dict[str, Any]]


class Character(TimestampMixin, Base):
    __tablename__ = "characters"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    world_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    character_class: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    experience: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    position: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    # The position's coordinates copied into plain numeric columns on every flush: one
    # B-tree on (world_id, pos_x, pos_z) then serves "who is near here" box queries the same
    # way on both backends, which an index on a JSON expression cannot (different syntax
    # per dialect, invisible to autogenerate).
    pos_x: Mapped[float | None] = mapped_column(Float)
    pos_y: Mapped[float | None] = mapped_column(Float)
    pos_z: Mapped[float | None] = mapped_column(Float)
    is_alive: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    user: Mapped[User] = relationship(back_populates="characters")
    world: Mapped[World] = relationship(back_populates="characters")
    inventory: Mapped[list[InventoryItem]] = relationship(
        back_populates="character", cascade="all, delete-orphan", passive_deletes=True
    )
    relationships: Mapped[list[CharacterRelationship]] = relationship(
        foreign_keys="CharacterRelationship.character_id",
        back_populates="character",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index(None, "user_id", "world_id"),
        Index(None, "world_id", "pos_x", "pos_z"),
    )

    def __repr__(self) -> str:
        return f"Character(id={self.id!s}, name={self.name!r})"


def _sync_position(_mapper: Mapper[Any], _conn: Any, target: Character) -> None:
    position = target.position or {}

    def coord(key: str) -> float | None:
        value = position.get(key) if isinstance(position, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    target.pos_x, target.pos_y, target.pos_z = coord("x"), coord("y"), coord("z")


event.listen(Character, "before_insert", _sync_position)
event.listen(Character, "before_update", _sync_position)


class InventoryItem(TimestampMixin, Base):
    __tablename__ = "inventory_items"

    id: Mapped[uuid.UUID] = _uuid_pk()
    character_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    item_type: Mapped[str] = mapped_column(
        String(50), default="material", server_default="material"
    )
    item_name: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    slot: Mapped[int | None]
    item_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)

    character: Mapped[Character] = relationship(back_populates="inventory")

    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_non_negative"),)


class CharacterRelationship(TimestampMixin, Base):
    __tablename__ = "character_relationships"

    id: Mapped[uuid.UUID] = _uuid_pk()
    character_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    target_character_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    relationship_type: Mapped[str] = mapped_column(
        String(50), default="acquaintance", server_default="acquaintance"
    )
    affinity: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    relationship_data: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=_EMPTY_JSON
    )

    character: Mapped[Character] = relationship(
        foreign_keys=[character_id], back_populates="relationships"
    )
    target_character: Mapped[Character] = relationship(foreign_keys=[target_character_id])

    __table_args__ = (
        UniqueConstraint(
            "character_id",
            "target_character_id",
            "relationship_type",
            name="uq_character_relationships_pair_type",
        ),
        CheckConstraint("character_id <> target_character_id", name="not_self"),
    )


class Story(TimestampMixin, Base):
    __tablename__ = "stories"

    id: Mapped[uuid.UUID] = _uuid_pk()
    world_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("worlds.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    story_type: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    branching_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    narrative_threads: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=_EMPTY_JSON
    )
    ai_evolution: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))

    world: Mapped[World] = relationship(back_populates="stories")
    choices: Mapped[list[StoryChoice]] = relationship(
        back_populates="story",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StoryChoice.choice_order",
    )

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

    id: Mapped[uuid.UUID] = _uuid_pk()
    story_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    character_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL"), index=True
    )
    choice_text: Mapped[str] = mapped_column(Text)
    choice_order: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    consequences: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))

    story: Mapped[Story] = relationship(back_populates="choices")
    character: Mapped[Character | None] = relationship()

    __table_args__ = (Index(None, "story_id", "choice_order"),)


class AIAgent(TimestampMixin, Base):
    __tablename__ = "ai_agents"

    id: Mapped[uuid.UUID] = _uuid_pk()
    agent_name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    agent_type: Mapped[str] = mapped_column(String(50), default="generic", server_default="generic")
    configuration: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    memory_state: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_active_at: Mapped[datetime | None]

    activities: DynamicMapped[AIAgentActivity] = relationship(
        back_populates="agent", lazy="dynamic", passive_deletes=True
    )


class AIAgentActivity(Base):
    __tablename__ = "ai_agent_activities"

    id: Mapped[uuid.UUID] = _uuid_pk()
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    world_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    activity_type: Mapped[str] = mapped_column(String(50))
    activity_data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    results: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    status: Mapped[str] = mapped_column(String(20), default="completed", server_default="completed")
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    completed_at: Mapped[datetime | None]

    agent: Mapped[AIAgent] = relationship(back_populates="activities")

    # Activity time: "what happened lately" overall, per agent and per world.
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "agent_id", "created_at"),
        Index(None, "world_id", "created_at"),
    )


class WorldEvolutionLog(Base):
    __tablename__ = "world_evolution_log"

    id: Mapped[uuid.UUID] = _uuid_pk()
    world_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("worlds.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ai_agents.id", ondelete="SET NULL"), index=True
    )
    evolution_type: Mapped[str] = mapped_column(String(50))
    changes_made: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=_EMPTY_JSON)
    impact_score: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))

    __table_args__ = (Index(None, "world_id", "created_at"),)


# --- helpers for WorldChunk's block access ------------------------------------------------


class _registry_connection:
    """The connection the registry runs on: the chunk's session's, else a short one of its own."""

    def __init__(self, chunk: WorldChunk) -> None:
        self._session = object_session(chunk)
        self._cm: Any = None

    def __enter__(self) -> Any:
        if self._session is not None:
            return self._session.connection()
        from voxeldb.meta._session import get_engine

        self._cm = get_engine().begin()
        return self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


def _detached_world(world_id: uuid.UUID) -> World:
    from voxeldb.errors import NotFoundError
    from voxeldb.meta._session import SessionLocal

    with SessionLocal() as session:
        world = session.get(World, world_id)
    if world is None:
        raise NotFoundError(f"world {world_id!s} does not exist")
    return world
