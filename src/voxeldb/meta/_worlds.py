"""Worlds, their chunks (mapped onto the chunk store's tables) and block states."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    ForeignKey,
    String,
    Text,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import (
    DynamicMapped,
    Mapped,
    mapped_column,
    object_session,
    relationship,
)

from voxeldb._ids import fresh_version
from voxeldb.chunks import (
    as_coord,
    block_states_table,
    journal_delete,
    journal_edit,
    journal_put,
    local_y,
    world_chunks_table,
    world_shape,
)
from voxeldb.errors import ChunkFormatError, CoordinateError
from voxeldb.meta._base import EMPTY_JSON, Base, TimestampMixin, uuid_pk

if TYPE_CHECKING:
    from voxeldb.meta._characters import Character
    from voxeldb.meta._stories import Story

__all__ = [
    "JOURNAL_ACTOR",
    "BlockState",
    "World",
    "WorldChunk",
]


class World(TimestampMixin, Base):
    __tablename__ = "worlds"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    world_settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    version: Mapped[int] = mapped_column(BigInteger, default=1, server_default=text("1"))
    """Bumped whenever the settings change, and by every agent activity that evolves the world
    (``voxeldb.services.run_agent_activity``, ``evolve_story``)."""
    evolution_state: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    """The AI-driven evolution tracking: what the agents have changed so far, in summary.

    Written by ``voxeldb.services`` (docs/playing.md, "World evolution")::

        {"activity_counts": {"<activity_type>": <int>, ...},
         "total_activities": <int>, "total_impact": <float>,
         "recent": [{"at": "<ISO 8601 UTC>", "agent": "<agent_name>",
                     "activity_type": "<type>", "impact": <float>,
                     "activity_id": "<uuid>", "log_id": "<uuid>"}, ...]}

    ``recent`` holds the newest 20 activities, oldest first."""
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


def _next_chunk_version(_current: int | None) -> int:
    # A fresh random version on every write, like the chunk store's (docs/storage.md).
    return fresh_version()


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

    # Every ORM UPDATE is "... WHERE version = <read>" and sets a new version, the same
    # optimistic concurrency the chunk store uses: a concurrent write is a StaleDataError,
    # never a lost update, and version-tagged caches see the change.
    # Every write, insert or update, takes a fresh random version like the chunk store's
    # rows: a version must never repeat (after a delete, a restored backup, ...).
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

        ``state`` is a name (``"stone"``) or a dict with a ``"type"``. On a
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
        old_id = int(blocks[iy, iz, ix])
        blocks[iy, iz, ix] = state_id
        self.data = encode_chunk(blocks)
        # For the world journal, written by the flush (_journal_flush below).
        self.__dict__.setdefault(_PENDING_EDITS, []).append(
            (iy * 256 + iz * 16 + ix, old_id, int(state_id))
        )

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


# --- the world journal: ORM writes of chunks are journaled in their flush ------------------

_PENDING_EDITS = "_voxeldb_journal_edits"
"""Instance-dict key: the ``(flat, old id, new id)`` edits ``set_block_at`` made since the
last flush."""

JOURNAL_ACTOR = "voxeldb_actor"
"""``Session.info`` key: the actor the journal records for the session's chunk writes."""


def _actor_of(target: WorldChunk) -> str | None:
    session = object_session(target)
    actor = None if session is None else session.info.get(JOURNAL_ACTOR)
    return actor if isinstance(actor, str) else None


def _journal_write(connection: Connection, target: WorldChunk, *, inserted: bool) -> None:
    edits = target.__dict__.pop(_PENDING_EDITS, None)
    history = inspect(target).attrs.data.history
    if not inserted and not history.has_changes():
        return
    actor = _actor_of(target)
    if edits:
        merged: dict[int, list[int]] = {}
        for flat, old, new in edits:
            if flat in merged:
                merged[flat][1] = new
            else:
                merged[flat] = [old, new]
        flats = sorted(merged)
        journal_edit(
            connection, target.world_id, target.chunk_x, target.chunk_z, target.version,
            flats, [merged[f][0] for f in flats], [merged[f][1] for f in flats], actor=actor,
        )  # fmt: skip
        return
    prior = None if inserted or not history.deleted else history.deleted[0]
    journal_put(
        connection, target.world_id, target.chunk_x, target.chunk_z, target.version,
        target.data, prior=prior, actor=actor,
    )  # fmt: skip


@event.listens_for(WorldChunk, "after_insert")
def _journal_insert(_mapper: Any, connection: Connection, target: WorldChunk) -> None:
    _journal_write(connection, target, inserted=True)


@event.listens_for(WorldChunk, "after_update")
def _journal_update(_mapper: Any, connection: Connection, target: WorldChunk) -> None:
    _journal_write(connection, target, inserted=False)


@event.listens_for(WorldChunk, "after_delete")
def _journal_remove(_mapper: Any, connection: Connection, target: WorldChunk) -> None:
    target.__dict__.pop(_PENDING_EDITS, None)
    history = inspect(target).attrs.data.history
    prior = target.__dict__.get("data")
    if history.deleted:
        prior = history.deleted[0]
    journal_delete(
        connection, target.world_id, target.chunk_x, target.chunk_z,
        prior=prior if isinstance(prior, bytes) else None, actor=_actor_of(target),
    )  # fmt: skip


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
