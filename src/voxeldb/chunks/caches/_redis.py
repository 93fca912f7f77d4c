"""The shared chunk cache tier: Redis, one key per chunk, fail-open.

Value layout of ``{prefix}:chunk:{world_key}:{cx}:{cz}``::

    int64 little-endian version | payload

``mode="encoded"``: the payload is the codec's bytes (``voxeldb.chunks.codec``).
``mode="decoded"``: the payload is a 16-byte header (magic ``b"vxdraw1\\0"``, uint32 LE
itemsize 2|4, uint32 LE height) and then the raw little-endian C-order ``(height, 16, 16)``
array, which ``np.frombuffer`` maps without a copy (the 24-byte prefix keeps it aligned).

An entry whose version differs from the one asked for is a miss: the database's version is
the truth and the cache is never trusted without it (``docs/caching.md``).

Redis is an optimisation, never a dependency: every call goes through the one circuit
breaker (``voxeldb._redis``): any Redis or socket error is logged once per outage, treated as
a miss (reads) or skipped (writes), and Redis is left alone for ``retry_seconds`` so a hung
server costs one timeout per retry window, not one per call.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, cast

import numpy as np

from voxeldb._redis import CircuitBreaker, close_quietly, redis_client
from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.errors import ChunkFormatError, ConfigurationError, ValidationError

__all__ = ["MGET_BATCH", "RedisChunkCache"]

logger = logging.getLogger("voxeldb.cache")

MGET_BATCH = 1024
"""Keys per MGET (and items per write pipeline): bounds the size of one Redis reply."""

_VERSION = struct.Struct("<q")
_RAW_MAGIC = b"vxdraw1\x00"
_RAW_HEADER = struct.Struct("<8sII")
_RAW_PREFIX = _VERSION.size + _RAW_HEADER.size
_RAW_DTYPES: dict[int, np.dtype[Any]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

_T = TypeVar("_T")
Wanted = Sequence[tuple[int, int, int]]
PutItem = tuple[int, int, int, bytes | None, np.ndarray[Any, Any] | None]
Payload = bytes | np.ndarray[Any, Any]


class RedisChunkCache:
    """Chunks in a (shared) Redis, keyed per world and coordinate, tagged with their version.

    Nothing here raises because Redis is down, slow or misbehaving: reads then miss and
    writes are skipped. Bad arguments (a malformed array, an unknown mode) do raise.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "voxeldb",
        mode: Literal["encoded", "decoded"] = "encoded",
        ttl_seconds: int = 3600,
        timeout_seconds: float = 0.25,
        retry_seconds: float = 5.0,
    ) -> None:
        if mode not in ("encoded", "decoded"):
            raise ConfigurationError(
                f"Redis cache mode must be 'encoded' or 'decoded', got {mode!r}"
            )
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 0:
            raise ConfigurationError(
                f"Redis cache ttl_seconds must be an integer >= 0 (0 = no expiry), got {ttl_seconds!r}"
            )
        if not timeout_seconds > 0:
            raise ConfigurationError(
                f"Redis cache timeout_seconds must be > 0, got {timeout_seconds!r}"
            )
        if not retry_seconds >= 0:
            raise ConfigurationError(
                f"Redis cache retry_seconds must be >= 0, got {retry_seconds!r}"
            )
        if not prefix or not isinstance(prefix, str):
            raise ConfigurationError(
                f"Redis cache prefix must be a non-empty string, got {prefix!r}"
            )
        self.mode: Literal["encoded", "decoded"] = mode
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = float(timeout_seconds)
        self.retry_seconds = float(retry_seconds)
        self._client = redis_client(url, timeout_seconds=self.timeout_seconds)
        self._breaker = CircuitBreaker(
            url, what="chunks", retry_seconds=self.retry_seconds, logger=logger
        )
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    # -- keys ---------------------------------------------------------------------------

    def key(self, world_key: str, cx: int, cz: int) -> str:
        """The Redis key of chunk ``(cx, cz)`` of ``world_key``."""
        return f"{self.prefix}:chunk:{world_key}:{int(cx)}:{int(cz)}"

    # -- reads --------------------------------------------------------------------------

    def get_many(self, world_key: str, wanted: Wanted) -> dict[tuple[int, int], Payload]:
        """The hits among ``wanted`` ``(cx, cz, version)``, as stored in this cache's mode.

        Values are the codec's ``bytes`` in ``"encoded"`` mode and read-only arrays in
        ``"decoded"`` mode; :meth:`get_arrays_many` and :meth:`get_encoded_many` give one
        type whatever the mode.
        """
        convert: Callable[[memoryview], Payload | None] = (
            _encoded_payload if self.mode == "encoded" else _raw_array
        )
        return self._fetch(world_key, wanted, convert)

    def get_arrays_many(
        self, world_key: str, wanted: Wanted
    ) -> dict[tuple[int, int], np.ndarray[Any, Any]]:
        """The hits among ``wanted`` as arrays (decoded with the codec in ``"encoded"`` mode).

        Arrays of ``"decoded"`` mode are read-only views of the Redis reply (no copy).
        An encoded entry that fails to decode counts as a miss.
        """
        if self.mode == "decoded":
            return self._fetch(world_key, wanted, _raw_array)

        def decode(payload: memoryview) -> np.ndarray[Any, Any] | None:
            if payload[: len(_RAW_MAGIC)] == _RAW_MAGIC:
                return None
            try:
                return decode_chunk(payload)
            except ChunkFormatError as exc:
                logger.warning("discarding an undecodable Redis cache entry: %s", exc)
                return None

        return self._fetch(world_key, wanted, decode)

    def get_encoded_many(self, world_key: str, wanted: Wanted) -> dict[tuple[int, int], bytes]:
        """The hits among ``wanted`` as the codec's bytes (re-encoded in ``"decoded"`` mode)."""
        if self.mode == "encoded":
            return self._fetch(world_key, wanted, _encoded_payload)

        def encode(payload: memoryview) -> bytes | None:
            array = _raw_array(payload)
            return None if array is None else encode_chunk(array)

        return self._fetch(world_key, wanted, encode)

    def peek_many(
        self, world_key: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[int, memoryview]]:
        """``(version, payload)`` of every entry of ``keys`` at whatever version, in this
        cache's mode (:meth:`payload_array`, :meth:`payload_encoded` convert it): for a reader
        that learns the current versions afterwards. Hits and misses are for it to
        :meth:`count`."""
        held: dict[tuple[int, int], tuple[int, memoryview]] = {}
        if not keys:
            return held
        values = self._mget([self.key(world_key, cx, cz) for cx, cz in keys])
        if values is None:
            return held
        for key, value in zip(keys, values, strict=True):
            if value is not None and len(value) >= _VERSION.size:
                view = memoryview(value)
                held[key] = (_VERSION.unpack_from(view)[0], view[_VERSION.size :])
        return held

    def count(self, hits: int, misses: int) -> None:
        """Add to the ``hits`` and ``misses`` of :meth:`stats`."""
        with self._lock:
            self._hits += hits
            self._misses += misses

    def payload_array(
        self,
        payload: memoryview,
        decode: Callable[[memoryview], np.ndarray[Any, Any]] = decode_chunk,
    ) -> np.ndarray[Any, Any] | None:
        """A :meth:`peek_many` payload as an array (by ``decode`` in encoded mode, a read-only
        view of the reply in decoded mode); None for an entry that is not one."""
        if self.mode == "decoded":
            return _raw_array(payload)
        if payload[: len(_RAW_MAGIC)] == _RAW_MAGIC:
            return None
        try:
            return decode(payload)
        except ChunkFormatError as exc:
            logger.warning("discarding an undecodable Redis cache entry: %s", exc)
            return None

    def payload_encoded(self, payload: memoryview) -> bytes | None:
        """A :meth:`peek_many` payload as the codec's bytes; None for an entry that is not one."""
        if self.mode == "encoded":
            return _encoded_payload(payload)
        array = _raw_array(payload)
        return None if array is None else encode_chunk(array)

    def _fetch(
        self,
        world_key: str,
        wanted: Wanted,
        convert: Callable[[memoryview], _T | None],
    ) -> dict[tuple[int, int], _T]:
        wanted = list(wanted)
        found: dict[tuple[int, int], _T] = {}
        if not wanted:
            return found
        values = self._mget([self.key(world_key, cx, cz) for cx, cz, _ in wanted])
        if values is None:
            with self._lock:
                self._misses += len(wanted)
            return found
        hits = 0
        for (cx, cz, version), value in zip(wanted, values, strict=True):
            if value is None or len(value) < _VERSION.size:
                continue
            view = memoryview(value)
            if _VERSION.unpack_from(view)[0] != version:
                continue
            converted = convert(view[_VERSION.size :])
            if converted is not None:
                found[(cx, cz)] = converted
                hits += 1
        with self._lock:
            self._hits += hits
            self._misses += len(wanted) - hits
        return found

    def _mget(self, keys: list[str]) -> list[bytes | None] | None:
        """The values of ``keys`` in one round trip; None when Redis is unavailable."""

        def mget() -> list[bytes | None]:
            if len(keys) <= MGET_BATCH:
                return cast("list[bytes | None]", self._client.mget(keys))
            # Several bounded replies, still one round trip.
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(keys), MGET_BATCH):
                pipe.mget(keys[start : start + MGET_BATCH])
            batches = cast("list[list[bytes | None]]", pipe.execute())
            return [value for batch in batches for value in batch]

        return self._call(mget)

    # -- writes -------------------------------------------------------------------------

    def put_many(self, world_key: str, items: Iterable[PutItem]) -> int:
        """Store ``(cx, cz, version, encoded, array)`` items, ``SET ... EX ttl``, pipelined.

        Give whichever of ``encoded``/``array`` is at hand (both if both): encoded mode
        stores ``encoded`` (encoding ``array`` when it is None), decoded mode stores
        ``array`` (decoding ``encoded`` when it is None). Returns how many were written
        (0 when Redis is unavailable).
        """
        written = 0
        batch: list[tuple[str, bytes]] = []
        for cx, cz, version, encoded, array in items:
            batch.append((self.key(world_key, cx, cz), self._value(version, encoded, array)))
            if len(batch) >= MGET_BATCH:
                written += self._set_batch(batch)
                batch = []
        if batch:
            written += self._set_batch(batch)
        return written

    def _value(
        self, version: int, encoded: bytes | None, array: np.ndarray[Any, Any] | None
    ) -> bytes:
        head = _VERSION.pack(version)
        if self.mode == "encoded":
            if encoded is None:
                if array is None:
                    raise _neither()
                encoded = encode_chunk(array)
            return b"".join((head, encoded))
        if array is None:
            if encoded is None:
                raise _neither()
            array = decode_chunk(encoded)
        return b"".join((head, *_raw_parts(array)))

    def _set_batch(self, batch: list[tuple[str, bytes]]) -> int:
        ttl = self.ttl_seconds or None

        def run() -> int:
            pipe = self._client.pipeline(transaction=False)
            for key, value in batch:
                pipe.set(key, value, ex=ttl)
            pipe.execute()
            return len(batch)

        return self._call(run) or 0

    def discard_many(self, world_key: str, keys: Iterable[tuple[int, int]]) -> int:
        """Delete the entries of ``(cx, cz)`` keys; returns how many existed (0 if Redis is down).

        Coherence does not depend on this (versions do); it frees memory early.
        """
        names = [self.key(world_key, cx, cz) for cx, cz in keys]
        if not names:
            return 0

        def run() -> int:
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(names), MGET_BATCH):
                pipe.delete(*names[start : start + MGET_BATCH])
            return int(sum(pipe.execute()))

        return self._call(run) or 0

    # -- health -------------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        """``reachable``, ``maxmemory``, ``policy``, ``used_memory`` (None when unknown), ``state``.

        Always asks the server (even during a retry window): ``voxeldb health`` wants the
        truth now, and one timeout for one health check is fine.
        """
        info: dict[str, Any] = {
            "url": self._breaker.display_url,
            "reachable": False,
            "maxmemory": None,
            "policy": None,
            "used_memory": None,
        }
        memory = self._breaker.call(lambda: dict(self._client.info("memory")), force=True)
        if memory is not None:
            info["reachable"] = True
            info["maxmemory"] = int(memory.get("maxmemory", 0))
            info["policy"] = str(memory.get("maxmemory_policy", "")) or None
            info["used_memory"] = int(memory.get("used_memory", 0))
        info["state"] = self.state
        return info

    @property
    def state(self) -> Literal["up", "down"]:
        """``"down"`` from a failure until a call succeeds again."""
        return self._breaker.state

    def stats(self) -> dict[str, Any]:
        """``hits``, ``misses`` (per chunk), ``errors`` (failed calls), ``skipped`` (calls not
        made during a retry window), ``state``."""
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "errors": self._breaker.errors,
                "skipped": self._breaker.skipped,
                "state": self.state,
            }

    def close(self) -> None:
        """Close the connection pool (no error if Redis is gone)."""
        close_quietly(self._client)

    def _call(self, fn: Callable[[], _T]) -> _T | None:
        """``fn()``, or None when Redis failed or is inside its retry window."""
        return self._breaker.call(fn)


def _encoded_payload(payload: memoryview) -> bytes | None:
    # A decoded-mode entry under the same prefix (a misconfigured neighbour) is a miss,
    # not a ChunkFormatError in the store.
    if payload[: len(_RAW_MAGIC)] == _RAW_MAGIC:
        return None
    return payload.tobytes()


def _raw_array(payload: memoryview) -> np.ndarray[Any, Any] | None:
    if len(payload) < _RAW_HEADER.size:
        return None
    magic, itemsize, height = cast("tuple[bytes, int, int]", _RAW_HEADER.unpack_from(payload))
    dtype = _RAW_DTYPES.get(itemsize)
    if (
        magic != _RAW_MAGIC
        or dtype is None
        or len(payload) != _RAW_HEADER.size + height * 256 * itemsize
    ):
        return None
    # frombuffer over the immutable reply: no copy, and the array is read-only.
    return np.frombuffer(payload, dtype=dtype, offset=_RAW_HEADER.size).reshape(height, 16, 16)


def _raw_parts(array: np.ndarray[Any, Any]) -> tuple[bytes, memoryview]:
    if not isinstance(array, np.ndarray):
        raise ChunkFormatError(f"a chunk must be a numpy array, got {type(array).__name__}")
    if array.dtype.kind != "u" or array.dtype.itemsize not in _RAW_DTYPES:
        raise ChunkFormatError(f"a chunk's dtype must be uint16 or uint32, got {array.dtype}")
    if array.ndim != 3 or array.shape[1:] != (16, 16) or array.shape[0] == 0:
        raise ChunkFormatError(f"a chunk must have shape (height, 16, 16), got {array.shape}")
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    header = _RAW_HEADER.pack(_RAW_MAGIC, little.itemsize, little.shape[0])
    return header, little.data


def _neither() -> ValidationError:
    return ValidationError(
        "put_many needs the encoded bytes or the array of each chunk", field="items"
    )
