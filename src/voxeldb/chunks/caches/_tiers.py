"""The cache tiers as wrappers around a chunk source (see ``_source``).

``LRUTier`` (the in-process :class:`ChunkLRU` of decoded arrays) wraps ``RedisTier`` (the
shared :class:`RedisChunkCache`), which wraps the backend's source. Each answers the keys it
holds at exactly the wanted version, delegates the misses, and keeps what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from voxeldb.chunks._geometry import Blocks, Key
from voxeldb.chunks.caches._lru import ChunkLRU
from voxeldb.chunks.caches._redis import RedisChunkCache
from voxeldb.chunks.caches._source import ChunkSource, Found, Read, Written

__all__ = ["LRUTier", "RedisTier", "with_caches"]


class LRUTier:
    """A :class:`ChunkSource` that answers from a (shared) :class:`ChunkLRU` first.

    Entries are keyed ``(world_key, cx, cz)``. Encoded fetches pass straight through: the
    LRU holds arrays, and encoding them again would cost more than it saves.
    """

    def __init__(self, lru: ChunkLRU, world_key: str, inner: ChunkSource) -> None:
        self.lru = lru
        self._world = world_key
        self._inner = inner

    def fetch(self, wanted: Mapping[Key, int], read: Read, *, encoded: bool = False) -> Found:
        if encoded:
            return self._inner.fetch(wanted, read, encoded=True)
        world = self._world
        hits = self.lru.get_many(((world, cx, cz), v) for (cx, cz), v in wanted.items())
        arrays: dict[Key, Blocks] = {}
        for key, array in hits.items():
            arrays[key[1:]] = array  # type: ignore[index]
        if len(arrays) == len(wanted):
            found = Found()
            found.arrays = arrays
            return found
        missing = {key: v for key, v in wanted.items() if key not in arrays}
        found = self._inner.fetch(missing, read)
        if found.arrays:
            versions = found.versions
            # Fresh from a decode or a Redis reply, read-only: cached without a copy.
            self.lru.put_many(
                (
                    ((world, cx, cz), versions[(cx, cz)], array)
                    for (cx, cz), array in found.arrays.items()
                ),
                take_ownership=True,
            )
        found.arrays.update(arrays)
        return found

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        world = self._world
        self.lru.put_many(
            (((world, cx, cz), v, array) for cx, cz, v, _, array in items if array is not None),
            take_ownership=owned,
        )
        self._inner.written(items, owned=owned)

    def discard(self, keys: Sequence[Key]) -> None:
        world = self._world
        for cx, cz in keys:
            self.lru.discard((world, cx, cz))
        self._inner.discard(keys)


class RedisTier:
    """A :class:`ChunkSource` that answers from a shared :class:`RedisChunkCache` first.

    Fail-open: when Redis is down every key is a miss (and writes to it are skipped), so
    reads and writes go on from the database. An entry of another shape than this world's
    (a foreign entry) is a miss.
    """

    def __init__(
        self,
        redis: RedisChunkCache,
        world_key: str,
        shape: tuple[int, int, int],
        inner: ChunkSource,
    ) -> None:
        self.redis = redis
        self._world = world_key
        self._shape = shape
        self._inner = inner

    def fetch(self, wanted: Mapping[Key, int], read: Read, *, encoded: bool = False) -> Found:
        world = self._world
        rows = [(cx, cz, v) for (cx, cz), v in wanted.items()]
        if encoded:
            blobs = self.redis.get_encoded_many(world, rows)
            found = self._delegate(wanted, blobs, read, encoded=True)
            if found.encoded:
                versions = found.versions
                self.redis.put_many(
                    world,
                    (
                        (cx, cz, versions[(cx, cz)], data, None)
                        for (cx, cz), data in found.encoded.items()
                    ),
                )
            found.encoded.update(blobs)
            found.versions.update((key, wanted[key]) for key in blobs)
            return found
        hits: dict[Key, Blocks] = {}
        for key, array in self.redis.get_arrays_many(world, rows).items():
            if array.shape != self._shape:
                continue  # not this world's shape: a foreign entry is a miss
            if array.flags.writeable:
                array.flags.writeable = False
            hits[key] = array
        found = self._delegate(wanted, hits, read, encoded=False)
        if found.arrays:
            versions, blobs = found.versions, found.encoded
            self.redis.put_many(
                world,
                (
                    (cx, cz, versions[(cx, cz)], blobs.get((cx, cz)), array)
                    for (cx, cz), array in found.arrays.items()
                ),
            )
        found.arrays.update(hits)
        found.versions.update((key, wanted[key]) for key in hits)
        return found

    def _delegate(
        self, wanted: Mapping[Key, int], hits: Mapping[Key, object], read: Read, *, encoded: bool
    ) -> Found:
        if len(hits) == len(wanted):
            return Found()
        missing = {key: v for key, v in wanted.items() if key not in hits}
        return self._inner.fetch(missing, read, encoded=encoded)

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        if items:
            self.redis.put_many(self._world, items)
        self._inner.written(items, owned=owned)

    def discard(self, keys: Sequence[Key]) -> None:
        if keys:
            self.redis.discard_many(self._world, keys)
        self._inner.discard(keys)


def with_caches(
    source: ChunkSource,
    world_key: str,
    shape: tuple[int, int, int],
    *,
    lru: ChunkLRU,
    redis: RedisChunkCache | None = None,
) -> ChunkSource:
    """``source`` wrapped in the tiers, outermost first: the LRU, then Redis (if any)."""
    if redis is not None:
        source = RedisTier(redis, world_key, shape, source)
    return LRUTier(lru, world_key, source)
