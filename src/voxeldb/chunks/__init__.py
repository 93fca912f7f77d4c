"""Chunk storage: the codec, the per-world block-state registry, the caches and the store.

Never imports ``voxeldb.meta``: the ORM depends on this package, not the reverse.
"""

from __future__ import annotations

from voxeldb.chunks._lru import ChunkLRU
from voxeldb.chunks._redis import RedisChunkCache
from voxeldb.chunks._registry import intern_states, lookup_states, normalize_state
from voxeldb.chunks._store import ChunkStore
from voxeldb.chunks.codec import decode_chunk, encode_chunk

__all__ = [
    "ChunkLRU",
    "ChunkStore",
    "RedisChunkCache",
    "decode_chunk",
    "encode_chunk",
    "intern_states",
    "lookup_states",
    "normalize_state",
]
