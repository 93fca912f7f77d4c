"""The storage engine: codec, block-state registry, chunk store, backends and cache tiers.

The lowest package: it never imports ``voxeldb.meta``, ``services``, ``ops`` or ``cli``.
Everything another package uses from here is exported below; nothing else is public.
"""

from __future__ import annotations

from voxeldb.chunks._lru import ChunkLRU
from voxeldb.chunks._redis import RedisChunkCache
from voxeldb.chunks._registry import (
    block_states_table,
    clear_memo,
    intern_states,
    lookup_states,
    normalize_state,
)
from voxeldb.chunks._store import (
    DEFAULT_HEIGHT,
    DEFAULT_MIN_Y,
    ChunkStore,
    as_coord,
    local_y,
    world_shape,
)
from voxeldb.chunks.codec import MAX_HEIGHT, decode_chunk, encode_chunk

__all__ = [
    "DEFAULT_HEIGHT",
    "DEFAULT_MIN_Y",
    "MAX_HEIGHT",
    "ChunkLRU",
    "ChunkStore",
    "RedisChunkCache",
    "as_coord",
    "block_states_table",
    "clear_memo",
    "decode_chunk",
    "encode_chunk",
    "intern_states",
    "local_y",
    "lookup_states",
    "normalize_state",
    "world_shape",
]
