"""The one schema source of the two tables the chunk store shares with the ORM.

``world_chunks`` and ``block_states`` are SQLAlchemy Core ``Table`` objects on
:data:`metadata`, the ``MetaData`` that ``voxeldb.meta``'s declarative base uses: the ORM maps
``WorldChunk`` and ``BlockState`` onto these very tables (``__table__``), the backends and the
block-state registry build their SQL from them, and the migrations must agree with them
(``tests/meta/test_migrations.py``). docs/schema.md describes them.

The column types every table shares live here too (the ORM's ``type_annotation_map`` uses
them): :class:`UUIDType` and :data:`JSONType`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from voxeldb._ids import as_uuid

__all__ = [
    "CHUNK_KEY_COLUMNS",
    "CHUNK_WRITE_COLUMNS",
    "JOURNAL_PARTITION_PREFIX",
    "NAMING_CONVENTION",
    "JSONType",
    "UUIDType",
    "block_state_tokens_table",
    "block_states_table",
    "journal_heads_table",
    "metadata",
    "world_chunks_table",
    "world_journal_table",
]

# Deterministic constraint names: migrations can then drop and alter them by name on both
# backends (SQLite's batch mode needs names to find constraints at all).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""Every voxeldb table lives here (the ORM's ``Base.metadata`` is this object)."""

JSONType: TypeEngine[Any] = JSONB().with_variant(JSON(), "sqlite")
"""JSONB on PostgreSQL (indexable with GIN, compact, deduplicated keys), JSON on SQLite.

JSONB is the base type so that ORM expressions get its comparator: ``col.contains({...})``
is ``@>`` (served by the GIN indexes) and ``col["k"].astext`` is ``->>`` on PostgreSQL; the
DDL is the same as before on both backends."""


class UUIDType(TypeDecorator[uuid.UUID]):
    """``sqlalchemy.Uuid`` that also accepts the string form in binds and comparisons.

    The seed passes ids around as ``str`` (``WorldChunk.world_id == world_id``); plain ``Uuid``
    only accepts ``uuid.UUID`` on SQLite. The DDL is exactly ``Uuid``'s (native ``uuid`` on
    PostgreSQL, ``CHAR(32)`` of hex digits on SQLite), as docs/schema.md agrees.
    """

    impl = Uuid
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return as_uuid(value, "id")

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        return value  # type: ignore[no-any-return]


def _timestamp() -> DateTime:
    return DateTime(timezone=True)


world_chunks_table = Table(
    "world_chunks",
    metadata,
    Column(
        "world_id",
        UUIDType(),
        ForeignKey("worlds.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("chunk_x", Integer, primary_key=True, autoincrement=False),
    Column("chunk_z", Integer, primary_key=True, autoincrement=False),
    # Always 0: a chunk is a whole column (the seed addresses chunks by x, y and z).
    Column("chunk_y", Integer, nullable=False, default=0, server_default=text("0")),
    Column("data", LargeBinary, nullable=False),
    # A fresh random version on every write (voxeldb._ids.fresh_version): never one used
    # before, whatever happens to the database.
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    Column("chunk_metadata", JSONType, nullable=True),
    # What a top-down map needs of the chunk, sealed with the version it describes
    # (voxeldb._summary); NULL, or another version's, means: decode the chunk.
    Column("summary", LargeBinary, nullable=True),
    Column("created_at", _timestamp(), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    Column(
        "updated_at",
        _timestamp(),
        nullable=False,
        server_default=text("CURRENT_TIMESTAMP"),
        onupdate=text("CURRENT_TIMESTAMP"),
    ),
)
"""One chunk column per row; the codec's bytes in ``data``, tagged with ``version``."""

block_states_table = Table(
    "block_states",
    metadata,
    Column(
        "world_id",
        UUIDType(),
        ForeignKey("worlds.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("state_id", Integer, primary_key=True, autoincrement=False),
    Column("state_key", Text, nullable=False),
    Column("state", JSONType, nullable=False),
    UniqueConstraint("world_id", "state_key"),
)
"""The per-world block-state registry: state <-> stable integer id (0 is air, never stored)."""

block_state_tokens_table = Table(
    "block_state_tokens",
    metadata,
    Column(
        "world_id",
        UUIDType(),
        ForeignKey("worlds.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("token", BigInteger, nullable=False),
)
"""One random token per world, replaced in the transaction that registers a new block state.

Processes key their memo of the registry by it: a registry restored from a backup comes
back with the token it had then, so a memo learned later is never taken for it."""

JOURNAL_PARTITION_PREFIX = "world_journal_p"
"""PostgreSQL: ``world_journal`` is partitioned by ``logged_at``, one partition a day named
``world_journal_pYYYYMMDD``, plus ``world_journal_default``. The partitions are made by
``voxeldb.chunks._journal_sql`` (ahead of time), not by the metadata: docs/journal.md."""

world_journal_table = Table(
    "world_journal",
    metadata,
    # No foreign key to worlds, on purpose: a snapshot does not carry the journal, and a
    # world deleted and restored under its id keeps counting from its old head
    # (docs/journal.md). Old entries of deleted worlds go with prune_journal.
    Column("world_id", UUIDType(), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    # The partition key on PostgreSQL, so part of the primary key.
    Column("logged_at", _timestamp(), primary_key=True),
    Column("chunk_x", Integer, nullable=False),
    Column("chunk_z", Integer, nullable=False),
    # 1 put, 2 edit, 3 delete (voxeldb.chunks._journal).
    Column("kind", SmallInteger, nullable=False),
    Column("version", BigInteger, nullable=True),
    Column("actor", String(200), nullable=True),
    # kind edit: uint32 flat indexes, old ids, new ids (docs/journal.md).
    Column("edits", LargeBinary, nullable=True),
    # kind put (replacing) and delete: the chunk's bytes before.
    Column("prior", LargeBinary, nullable=True),
    # kind put: blake2b-8 of the bytes written (rollback's "still holds the put").
    Column("digest", LargeBinary, nullable=True),
    Index("ix_world_journal_area", "world_id", "chunk_x", "chunk_z", "logged_at"),
    Index("ix_world_journal_actor", "world_id", "actor", "logged_at"),
    postgresql_partition_by="RANGE (logged_at)",
)
"""A world's journal: one row per chunk changed by a committed write (docs/journal.md)."""

journal_heads_table = Table(
    "world_journal_heads",
    metadata,
    Column("world_id", UUIDType(), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)
"""The newest seq of each world's journal; its row lock orders the writers' commits."""

_c = world_chunks_table.c
CHUNK_KEY_COLUMNS: tuple[str, ...] = (_c.world_id.name, _c.chunk_x.name, _c.chunk_z.name)
"""The primary key of ``world_chunks``, in order (the ``ON CONFLICT`` target)."""
CHUNK_WRITE_COLUMNS: tuple[str, ...] = (
    *CHUNK_KEY_COLUMNS,
    _c.data.name,
    _c.version.name,
    _c.summary.name,
)
"""The columns a chunk write names (an INSERT or COPY lets the others default)."""
