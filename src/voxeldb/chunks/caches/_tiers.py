"""The cache tiers as wrappers around a chunk source (see ``_source``).

``LRUTier`` (the in-process :class:`ChunkLRU`) wraps ``RedisTier`` (the shared
:class:`RedisChunkCache`), which wraps the backend's source. On the way in each adds the
versions it holds to the request; on the way out it fills in those the database confirmed
as current and keeps what came from further in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from voxeldb.chunks._geometry import Blocks, Key
from voxeldb.chunks.caches._lru import ChunkLRU, Held
from voxeldb.chunks.caches._redis import RedisChunkCache
from voxeldb.chunks.caches._source import ChunkSource, Found, Request, Written

__all__ = ["Decode", "LRUTier", "RedisTier", "with_caches"]

Decode = Callable[[Key, bytes], Blocks]
"""The store's decode of a chunk's stored bytes: read-only, its shape checked, errors
naming the chunk."""


class LRUTier:
    """A :class:`ChunkSource` that answers from a (shared) :class:`ChunkLRU` first.

    Entries are keyed ``(world_key, cx, cz)`` and hold the array, the encoded bytes or both:
    an encoded read is served from the bytes, and a decoded read of an entry holding only
    bytes decodes them (``decode``) instead of asking the database for them.
    """

    def __init__(self, lru: ChunkLRU, world_key: str, inner: ChunkSource, decode: Decode) -> None:
        self.lru = lru
        self._world = world_key
        self._inner = inner
        self._decode = decode

    def fetch(self, request: Request) -> Found:
        world, lru, known, encoded = self._world, self.lru, request.known, request.encoded
        held = lru.peek_many(
            ((world, *key) for key in request.keys if key not in known), encoded=encoded
        )
        mine: dict[Key, Held] = {}
        for lru_key, entry in held.items():
            key: Key = lru_key[1:]  # type: ignore[index]
            mine[key] = entry
            known[key] = entry[0]
        found = self._inner.fetch(request)
        values: dict[Key, Any] = found.encoded if encoded else found.arrays
        supplied = list(values)
        hits: list[Any] = []
        decoded: list[tuple[Any, int, Blocks | None, bytes | None]] = []
        for key, version in found.versions.items():
            have = mine.get(key)
            if have is None or have[0] != version or key in values:
                continue  # not held here at this version: supplied, or someone else's
            value = have[2] if encoded else have[1]
            if value is None:  # held as bytes only
                value = self._decode(key, have[2])  # type: ignore[arg-type]
                decoded.append(((world, *key), version, value, None))
            values[key] = value
            hits.append((world, *key))
        if supplied or decoded:
            versions, arrays, blobs = found.versions, found.arrays, found.encoded
            # Fresh from a decode or a Redis reply, read-only: cached without a copy.
            decoded += [
                ((world, *key), versions[key], arrays.get(key), blobs.get(key)) for key in supplied
            ]
            lru.keep_many(decoded, owned=True, hits=hits, misses=len(supplied))
        else:
            lru.confirm(hits, 0)
        return found

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        world = self._world
        self.lru.keep_many(
            (
                ((world, cx, cz), v, array, blob)
                for cx, cz, v, blob, array in items
                if array is not None or blob is not None
            ),
            owned=owned,
            merge=False,
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
    reads and writes go on from the database. An entry that cannot be used although its
    version is current (damaged, or of another shape than this world's: a foreign entry) is
    read from the database after all.
    """

    def __init__(
        self,
        redis: RedisChunkCache,
        world_key: str,
        shape: tuple[int, int, int],
        inner: ChunkSource,
        decode: Callable[[memoryview], Blocks] | None = None,
    ) -> None:
        self.redis = redis
        self._world = world_key
        self._shape = shape
        self._inner = inner
        self._decode = decode

    def fetch(self, request: Request) -> Found:
        world, redis, known, encoded = self._world, self.redis, request.known, request.encoded
        held = redis.peek_many(world, [key for key in request.keys if key not in known])
        for key, (version, _) in held.items():
            known[key] = version
        found = self._inner.fetch(request)
        values: dict[Key, Any] = found.encoded if encoded else found.arrays
        supplied = list(values)
        unusable: list[Key] = []
        hits = 0
        for key, version in found.versions.items():
            entry = held.get(key)
            if entry is None or entry[0] != version or key in values:
                continue
            value = self._value(entry[1], encoded)
            if value is None:
                unusable.append(key)
                continue
            values[key] = value
            hits += 1
            if not encoded and redis.mode == "encoded":
                found.encoded[key] = entry[1].tobytes()  # the LRU keeps both forms
        if unusable:
            again = self._inner.fetch(Request(None, unusable, encoded=encoded))
            found.versions.update(again.versions)
            found.arrays.update(again.arrays)
            found.encoded.update(again.encoded)
            supplied += list(again.encoded if encoded else again.arrays)
        redis.count(hits, len(supplied))
        if supplied:
            versions, arrays, blobs = found.versions, found.arrays, found.encoded
            redis.put_many(
                world,
                [(cx, cz, versions[(cx, cz)], blobs.get((cx, cz)), arrays.get((cx, cz)))
                 for cx, cz in supplied],
            )  # fmt: skip
        return found

    def _value(self, payload: memoryview, encoded: bool) -> Any:
        if encoded:
            return self.redis.payload_encoded(payload)
        if self._decode is None:
            array = self.redis.payload_array(payload)
        else:
            array = self.redis.payload_array(payload, self._decode)
        if array is None or array.shape != self._shape:
            return None  # not this world's shape: a foreign entry is a miss
        if array.flags.writeable:
            array.flags.writeable = False
        return array

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
    decode: Decode,
    redis: RedisChunkCache | None = None,
) -> ChunkSource:
    """``source`` wrapped in the tiers, outermost first: the LRU, then Redis (if any).
    ``decode`` is the store's (errors naming the chunk); Redis payloads decode into the
    LRU's recycled memory, an undecodable one being a miss."""
    if redis is not None:
        source = RedisTier(redis, world_key, shape, source, lambda data: lru.decode(data, shape))
    return LRUTier(lru, world_key, source, decode)
