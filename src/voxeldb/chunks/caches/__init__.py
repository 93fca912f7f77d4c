"""The chunk cache tiers, as wrappers around a chunk source (zarr's ``CacheStore`` idea).

:class:`ChunkLRU` (in-process: arrays and encoded bytes, recycling its memory) and
:class:`RedisChunkCache` (shared, fail-open) are the caches; :class:`LRUTier` and
:class:`RedisTier` wrap a :class:`ChunkSource` with them. Every entry is tagged with the
chunk's database version, and a tier answers only for exactly the version the database
names in the same read (docs/caching.md).
"""

from __future__ import annotations

from voxeldb.chunks.caches._lru import ChunkLRU
from voxeldb.chunks.caches._redis import MGET_BATCH, RedisChunkCache
from voxeldb.chunks.caches._source import ChunkSource, Found, Request, Written
from voxeldb.chunks.caches._tiers import Decode, LRUTier, RedisTier, with_caches

__all__ = [
    "MGET_BATCH",
    "ChunkLRU",
    "ChunkSource",
    "Decode",
    "Found",
    "LRUTier",
    "RedisChunkCache",
    "RedisTier",
    "Request",
    "Written",
    "with_caches",
]
