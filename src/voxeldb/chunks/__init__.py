"""The storage engine: codec, block-state registry, chunk store, backends and cache tiers.

The lowest package: it never imports ``voxeldb.meta``, ``services``, ``ops`` or ``cli``.
Everything another package uses from here is exported below; nothing else is public.

Layout: ``codec/`` (bytes), ``_geometry`` (shape and coordinates), ``_schema`` (the
``world_chunks`` and ``block_states`` tables, shared with the ORM), ``_registry`` (block
states), ``_store`` (``ChunkStore``) with ``_reads`` and ``_edits``, ``backends/`` (one
module per database), ``caches/`` (the LRU and Redis tiers).
"""

from __future__ import annotations

from voxeldb.chunks._edits import edit_blocks
from voxeldb.chunks._geometry import (
    DEFAULT_HEIGHT,
    DEFAULT_MIN_Y,
    INT32_MAX,
    INT32_MIN,
    as_coord,
    local_y,
    world_compression,
    world_shape,
)
from voxeldb.chunks._journal import (
    BlockEdit,
    Change,
    RollbackReport,
    journal_delete,
    journal_deletes,
    journal_edit,
    journal_head,
    journal_put,
    journal_puts,
)
from voxeldb.chunks._journal import check_actor as check_journal_actor
from voxeldb.chunks._journal_sql import create_partitions as create_journal_partitions
from voxeldb.chunks._journal_sql import prune as prune_journal
from voxeldb.chunks._registry import (
    clear_memo,
    intern_states,
    lookup_states,
    normalize_state,
)
from voxeldb.chunks._schema import (
    JOURNAL_PARTITION_PREFIX,
    NAMING_CONVENTION,
    JSONType,
    UUIDType,
    block_states_table,
    journal_heads_table,
    metadata,
    world_chunks_table,
    world_journal_table,
)
from voxeldb.chunks._store import ChunkStore
from voxeldb.chunks.backends import Backend, open_backend, register_backend
from voxeldb.chunks.caches import ChunkLRU, RedisChunkCache
from voxeldb.chunks.codec import MAX_HEIGHT, check_compression, decode_chunk, encode_chunk

__all__ = [
    "DEFAULT_HEIGHT",
    "DEFAULT_MIN_Y",
    "INT32_MAX",
    "INT32_MIN",
    "JOURNAL_PARTITION_PREFIX",
    "MAX_HEIGHT",
    "NAMING_CONVENTION",
    "Backend",
    "BlockEdit",
    "Change",
    "ChunkLRU",
    "ChunkStore",
    "JSONType",
    "RedisChunkCache",
    "RollbackReport",
    "UUIDType",
    "as_coord",
    "block_states_table",
    "check_compression",
    "check_journal_actor",
    "clear_memo",
    "create_journal_partitions",
    "decode_chunk",
    "edit_blocks",
    "encode_chunk",
    "intern_states",
    "journal_delete",
    "journal_deletes",
    "journal_edit",
    "journal_head",
    "journal_heads_table",
    "journal_put",
    "journal_puts",
    "local_y",
    "lookup_states",
    "metadata",
    "normalize_state",
    "open_backend",
    "prune_journal",
    "register_backend",
    "world_chunks_table",
    "world_compression",
    "world_journal_table",
    "world_shape",
]
