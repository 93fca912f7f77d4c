"""The chunk store: coordinate-addressed chunk columns in ``world_chunks`` behind two caches.

Coherence rests on the ``version`` column alone (docs/storage.md). Every read first asks the
database for the current versions of what it wants (one versions-only query per batch), then
takes ``(key, version)`` hits from the in-process LRU, then from Redis, and reads only the
remaining rows' data, in one query per batch. A cache entry of any other version is a miss,
so once a write has committed no reader in any process can be served the old chunk. Writes
fill or clear the caches only to save the next reader a trip; correctness never needs it.

This module holds everything both backends share; ``_sqlite`` and ``_postgres`` supply the
SQL (the abstract ``_db_*`` methods).
"""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import math
import operator
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from voxeldb.chunks._lru import ChunkLRU
from voxeldb.chunks._redis import RedisChunkCache
from voxeldb.chunks._registry import (
    clear_memo,
    intern_states,
    lookup_states,
    normalize_state,
    state_key,
)
from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.errors import (
    ChunkFormatError,
    ConcurrencyError,
    CoordinateError,
    DatabaseUnavailableError,
    NotFoundError,
    ValidationError,
)

__all__ = [
    "DEFAULT_HEIGHT",
    "DEFAULT_MIN_Y",
    "ChunkStore",
    "Key",
    "Row",
    "as_coord",
    "local_y",
    "world_shape",
]

logger = logging.getLogger("voxeldb.chunks")

DEFAULT_HEIGHT = 384
DEFAULT_MIN_Y = -64


def world_shape(settings: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(height, min_y)`` of a world from its settings, with CONTRACT §1's defaults."""
    settings = settings or {}
    return int(settings.get("height", DEFAULT_HEIGHT)), int(settings.get("min_y", DEFAULT_MIN_Y))


Blocks = npt.NDArray[Any]
Key = tuple[int, int]
Row = tuple[int, int, int, bytes]
"""``(cx, cz, version, data)`` as a backend returns it."""
VersionRow = tuple[int, int, int]
Rect = tuple[int, int, int, int]
"""``(cx0, cz0, cx1, cz1)``, inclusive."""

_T = TypeVar("_T")

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_U16_MAX = 2**16 - 1
_U32_MAX = 2**32 - 1
_WRITE_ATTEMPTS = 50
_REGION_MAX_STRIPS = 16
"""Past this many strips a region reads all its versions in one query instead."""
_STREAM_BAND_CHUNKS = 8192
"""Stream bands are sized to hold about this many stored chunks (bounded versions reply)."""


def as_coord(value: object, name: str) -> int:
    """``value`` as a Python int; floats, bools, strings and the like are refused."""
    if isinstance(value, bool | float) or not hasattr(value, "__index__"):
        raise CoordinateError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200]
        )
    return operator.index(value)


def local_y(y: object, height: int, min_y: int) -> int:
    """Row of world ``y`` in a chunk array; outside the world a CoordinateError with the range."""
    yi = as_coord(y, "y")
    if not min_y <= yi < min_y + height:
        raise CoordinateError(
            f"y = {yi} is outside the world: valid range {min_y}..{min_y + height - 1}, "
            f"i.e. [{min_y}, {min_y + height}) (min_y = {min_y}, height = {height})"
        )
    return yi - min_y


def _chunk_coord(value: object, name: str) -> int:
    result = as_coord(value, name)
    if not _INT32_MIN <= result <= _INT32_MAX:
        raise CoordinateError(
            f"{name} = {result} is outside the chunk coordinate range [{_INT32_MIN}, {_INT32_MAX}]"
        )
    return result


class ChunkStore(abc.ABC):
    """The chunks of one world (CONTRACT §4); get one from ``voxeldb.connect(...).chunks(id)``.

    Arrays returned by reads are read-only and may be shared with the in-process cache (a hot
    region read is then free of copies); call ``.copy()`` to edit one.
    """

    backend: str = ""

    def __init__(
        self,
        engine: Engine,
        world_id: uuid.UUID | str,
        *,
        height: int = DEFAULT_HEIGHT,
        min_y: int = DEFAULT_MIN_Y,
        lru: ChunkLRU | None = None,
        redis: RedisChunkCache | None = None,
        batch_size: int = 1024,
    ) -> None:
        if isinstance(world_id, str):
            try:
                world_id = uuid.UUID(world_id)
            except ValueError:
                raise ValidationError(
                    f"world_id {world_id!r} is not a UUID", field="world_id"
                ) from None
        if not isinstance(world_id, uuid.UUID):
            raise ValidationError(
                f"world_id must be a UUID or its string form, got {type(world_id).__name__}",
                field="world_id",
            )
        if (
            isinstance(height, bool)
            or not isinstance(height, int)
            or height <= 0
            or height % 16
            or height > 4096
        ):
            raise ValidationError(
                f"world height must be a positive multiple of 16 (at most 4096), got {height!r}",
                field="height",
            )
        if isinstance(min_y, bool) or not isinstance(min_y, int):
            raise ValidationError(f"world min_y must be an integer, got {min_y!r}", field="min_y")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.engine = engine
        self.world_id = world_id
        self.height = height
        self.min_y = min_y
        self.batch_size = batch_size
        self._lru = lru if lru is not None else ChunkLRU(64 * 1024 * 1024)
        self._redis = redis
        self._world_key = world_id.hex
        self._shape = (height, 16, 16)

    @staticmethod
    def open(engine: Engine, world_id: uuid.UUID | str, **kwargs: Any) -> ChunkStore:
        """The store of ``engine``'s backend (PostgreSQL or SQLite) for ``world_id``."""
        name = engine.dialect.name
        if name == "postgresql":
            from voxeldb.chunks._postgres import PostgresChunkStore

            return PostgresChunkStore(engine, world_id, **kwargs)
        if name == "sqlite":
            from voxeldb.chunks._sqlite import SQLiteChunkStore

            return SQLiteChunkStore(engine, world_id, **kwargs)
        raise ValidationError(f"no chunk store for database backend {name!r}", field="url")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} world={self.world_id} height={self.height} min_y={self.min_y}>"
        )

    @property
    def lru(self) -> ChunkLRU:
        """The in-process cache of decoded chunks (shared by the stores of one ``Database``)."""
        return self._lru

    @property
    def redis(self) -> RedisChunkCache | None:
        """The shared Redis tier, or None."""
        return self._redis

    # ------------------------------------------------------------------ backend primitives

    @abc.abstractmethod
    def _db_versions(self, conn: Connection, rects: Sequence[Rect]) -> list[VersionRow]:
        """``(cx, cz, version)`` of the stored chunks in the union of disjoint ``rects``."""

    @abc.abstractmethod
    def _db_versions_of(self, conn: Connection, keys: Sequence[Key]) -> list[VersionRow]:
        """``(cx, cz, version)`` of those of ``keys`` that are stored, in one round trip."""

    @abc.abstractmethod
    def _db_data(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        """The rows of ``keys`` (absent ones are left out), in one round trip."""

    @abc.abstractmethod
    def _db_data_rect(self, conn: Connection, rect: Rect) -> list[Row]:
        """Every stored row in ``rect``, in one round trip."""

    @abc.abstractmethod
    def _connect_for_write(self) -> Connection:
        """A new connection whose transactions are write transactions (SQLite: IMMEDIATE)."""

    @abc.abstractmethod
    def _db_upsert(
        self, conn: Connection, rows: Sequence[tuple[int, int, bytes]]
    ) -> dict[Key, int]:
        """Insert or replace rows (distinct keys); the new version of each."""

    @abc.abstractmethod
    def _db_bulk_upsert(self, conn: Connection, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """``_db_upsert`` for a large batch of distinct keys, by the backend's fastest path."""

    @abc.abstractmethod
    def _db_lock(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        """The rows of ``keys``, locked against other writers until the transaction ends."""

    @abc.abstractmethod
    def _db_insert_new(
        self, conn: Connection, rows: Sequence[tuple[int, int, bytes]]
    ) -> dict[Key, int]:
        """Insert the rows whose key is free; the versions of those inserted (others skipped)."""

    @abc.abstractmethod
    def _db_update(
        self, conn: Connection, rows: Sequence[tuple[int, int, bytes]]
    ) -> dict[Key, int]:
        """Replace the data of existing (locked) rows, version + 1; their new versions."""

    @abc.abstractmethod
    def _db_delete(self, conn: Connection, cx: int, cz: int) -> bool:
        """Delete one row; whether it existed."""

    @abc.abstractmethod
    def _classify(self, exc: BaseException) -> str | None:
        """``"transient"`` (deadlock, serialization failure, busy: retry the transaction),
        ``"disconnect"`` (the connection is gone), ``"foreign_key"`` (a foreign-key
        violation: the only foreign keys written here point at the world) or None."""

    # ------------------------------------------------------------------ validation helpers

    def _block_coords(self, x: object, y: object, z: object) -> tuple[int, int, int, int, int]:
        """``(cx, cz, lx, ly, lz)`` of block ``(x, y, z)`` (CONTRACT §1)."""
        xi, zi = as_coord(x, "x"), as_coord(z, "z")
        ly = local_y(y, self.height, self.min_y)
        cx, cz = xi >> 4, zi >> 4
        if not (_INT32_MIN <= cx <= _INT32_MAX and _INT32_MIN <= cz <= _INT32_MAX):
            raise CoordinateError(
                f"block ({xi}, {y}, {zi}) is outside the world's chunk range "
                f"(chunk coordinates must lie in [{_INT32_MIN}, {_INT32_MAX}])"
            )
        return cx, cz, xi & 15, ly, zi & 15

    def _check_blocks(self, blocks: object, where: str) -> Blocks:
        if not isinstance(blocks, np.ndarray):
            raise ChunkFormatError(
                f"{where}: blocks must be a numpy array of shape {self._shape}, "
                f"got {type(blocks).__name__}"
            )
        if blocks.dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ChunkFormatError(
                f"{where}: blocks must have dtype uint16 or uint32, got {blocks.dtype}"
            )
        if blocks.shape != self._shape:
            raise ChunkFormatError(
                f"{where}: blocks must have shape (height, 16, 16) = {self._shape} for this "
                f"world (height {self.height}), got {blocks.shape}"
            )
        return blocks

    # ------------------------------------------------------------------ connections & retries

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return DatabaseUnavailableError(
            f"lost the connection to the database ({type(orig).__name__}: {str(orig).strip()})"[
                :500
            ]
        )

    @contextlib.contextmanager
    def _read_connection(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            if self._classify(exc) == "disconnect":
                raise self._unavailable(exc) from exc
            raise
        try:
            yield conn
        except Exception as exc:
            if self._classify(exc) == "disconnect":
                conn.invalidate()
                raise self._unavailable(exc) from exc
            raise
        finally:
            conn.close()

    def _write_once(self, work: Callable[[Connection], _T]) -> _T:
        """``work(conn)`` in one write transaction: committed on success, else rolled back."""
        try:
            conn = self._connect_for_write()
        except DBAPIError as exc:
            if self._classify(exc) == "disconnect":
                raise self._unavailable(exc) from exc
            raise
        try:
            trans = conn.begin()
            try:
                result = work(conn)
            except BaseException:
                # On a dead connection the rollback itself fails: the original error counts.
                with contextlib.suppress(Exception):
                    trans.rollback()
                raise
            try:
                trans.commit()
            except BaseException:
                # The block-state registry memoizes a transaction's new ids at its commit
                # event, which fires before COMMIT reaches the server: after a failed COMMIT
                # the memo may hold ids the database never stored.
                clear_memo()
                with contextlib.suppress(Exception):
                    trans.rollback()
                raise
            return result
        except Exception as exc:
            kind = self._classify(exc)
            if kind == "disconnect":
                with contextlib.suppress(Exception):
                    conn.invalidate()
                raise self._unavailable(exc) from exc
            if kind == "foreign_key":
                raise NotFoundError(
                    f"world {self.world_id} does not exist (deleted while its store was open?)"
                ) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _in_write_transaction(self, work: Callable[[Connection], _T]) -> _T:
        """``_write_once``, again after deadlocks and busy errors (``work`` must be replayable)."""
        delay = 0.002
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return self._write_once(work)
            except Exception as exc:
                if self._classify(exc) != "transient":
                    raise
                logger.debug("retrying a chunk write after %s (attempt %d)", exc, attempt)
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        raise ConcurrencyError(
            f"a chunk write kept conflicting with other writers after {_WRITE_ATTEMPTS} attempts"
        )

    # ------------------------------------------------------------------ cache plumbing

    def _lru_key(self, cx: int, cz: int) -> tuple[str, int, int]:
        return (self._world_key, cx, cz)

    def _resolve(
        self,
        conn: Connection,
        versions: Sequence[VersionRow],
        rect: Rect | None = None,
    ) -> dict[Key, Blocks]:
        """The arrays of ``versions`` (current ``(cx, cz, version)``): caches first, then the DB.

        ``rect``: the rectangle ``versions`` came from, so that a fully cold read can fetch it
        by range instead of by key list.
        """
        world = self._world_key
        found: dict[Key, Blocks] = {}
        hits = self._lru.get_many(((world, cx, cz), v) for cx, cz, v in versions)
        if hits:
            for cx, cz, _ in versions:
                array = hits.get((world, cx, cz))
                if array is not None:
                    found[(cx, cz)] = array
        missing = [row for row in versions if (row[0], row[1]) not in found]
        if missing and self._redis is not None:
            from_redis = self._redis.get_arrays_many(world, missing)
            if from_redis:
                by_key = {(cx, cz): v for cx, cz, v in missing}
                fresh = []
                for key, array in from_redis.items():
                    if array.shape != self._shape:
                        continue  # not this world's shape: a foreign entry is a miss
                    if array.flags.writeable:
                        array.flags.writeable = False
                    found[key] = array
                    fresh.append(((world, key[0], key[1]), by_key[key], array))
                self._lru.put_many(fresh, take_ownership=True)
                missing = [row for row in missing if (row[0], row[1]) not in found]
        if missing:
            if rect is not None and len(missing) == len(versions):
                rows = self._db_data_rect(conn, rect)
            else:
                rows = self._db_data(conn, [(cx, cz) for cx, cz, _ in missing])
            decoded = self._decode_rows(rows)
            for (cx, cz, _, _), array in zip(rows, decoded, strict=True):
                found[(cx, cz)] = array
            self._lru.put_many(
                (
                    ((world, cx, cz), v, array)
                    for (cx, cz, v, _), array in zip(rows, decoded, strict=True)
                ),
                take_ownership=True,
            )
            if self._redis is not None and rows:
                self._redis.put_many(
                    world,
                    (
                        (cx, cz, v, data, array)
                        for (cx, cz, v, data), array in zip(rows, decoded, strict=True)
                    ),
                )
        return found

    def _decode_rows(self, rows: Sequence[Row], *, readonly: bool = True) -> list[Blocks]:
        arrays = []
        for cx, cz, _, data in rows:
            try:
                array = decode_chunk(data)
            except ChunkFormatError as exc:
                raise ChunkFormatError(
                    f"stored chunk ({cx}, {cz}) of world {self.world_id} is unreadable: {exc}"
                ) from exc
            if array.shape != self._shape:
                raise ChunkFormatError(
                    f"stored chunk ({cx}, {cz}) of world {self.world_id} has shape "
                    f"{array.shape}, but the world's height is {self.height}"
                )
            if readonly:
                array.flags.writeable = False
            arrays.append(array)
        return arrays

    def _cache_written(
        self, written: Mapping[Key, int], arrays: Mapping[Key, Blocks], encoded: Mapping[Key, bytes]
    ) -> None:
        """Write-through after commit: the next reader of these versions skips the database."""
        world = self._world_key
        self._lru.put_many(
            (((world, cx, cz), v, arrays[(cx, cz)]) for (cx, cz), v in written.items()),
            take_ownership=True,
        )
        if self._redis is not None and written:
            self._redis.put_many(
                world,
                (
                    (cx, cz, v, encoded[(cx, cz)], arrays[(cx, cz)])
                    for (cx, cz), v in written.items()
                ),
            )

    # ------------------------------------------------------------------ reads

    def get(self, cx: int, cz: int) -> Blocks | None:
        """Chunk ``(cx, cz)``, or None when it is not stored."""
        cx, cz = _chunk_coord(cx, "cx"), _chunk_coord(cz, "cz")
        return self.region(cx, cz, cx, cz).get((cx, cz))

    def region(self, cx0: int, cz0: int, cx1: int, cz1: int) -> dict[Key, Blocks]:
        """Every stored chunk of the inclusive rectangle ``[cx0, cx1] x [cz0, cz1]``."""
        cx0, cz0 = _chunk_coord(cx0, "cx0"), _chunk_coord(cz0, "cz0")
        cx1, cz1 = _chunk_coord(cx1, "cx1"), _chunk_coord(cz1, "cz1")
        if cx0 > cx1 or cz0 > cz1:
            raise CoordinateError(
                f"region({cx0}, {cz0}, {cx1}, {cz1}): need cx0 <= cx1 and cz0 <= cz1"
            )
        out: dict[Key, Blocks] = {}
        # Strips of whole columns of x, each at most ~batch_size positions: one versions
        # query and at most one data query per strip.
        width = cz1 - cz0 + 1
        step = max(1, self.batch_size // width)
        if (cx1 - cx0) // step >= _REGION_MAX_STRIPS:
            # A huge rectangle (mostly empty, or the result would not fit in memory): strips
            # would cost a query per few columns however few chunks are stored, so read
            # every version at once (the result holds their arrays anyway), then the data
            # in batches of keys.
            with self._read_connection() as conn:
                versions = self._db_versions(conn, [(cx0, cz0, cx1, cz1)])
                for start in range(0, len(versions), self.batch_size):
                    batch = versions[start : start + self.batch_size]
                    found = self._resolve(conn, batch)
                    for cx, cz, _ in batch:
                        array = found.get((cx, cz))
                        if array is not None:
                            out[(cx, cz)] = array
            return out
        with self._read_connection() as conn:
            x = cx0
            while x <= cx1:
                strip = (x, cz0, min(cx1, x + step - 1), cz1)
                versions = self._db_versions(conn, [strip])
                if versions:
                    found = self._resolve(conn, versions, rect=strip)
                    for cx, cz, _ in versions:
                        array = found.get((cx, cz))
                        if array is not None:
                            out[(cx, cz)] = array
                x += step
        return out

    def stream(
        self, cx: int, cz: int, radius: int, *, encoded: bool = False
    ) -> Iterator[tuple[int, int, Any]]:
        """Stored chunks of the square of ``radius`` around ``(cx, cz)``, nearest first.

        Lazy: the square is read in bands of growing Chebyshev radius, so the first chunks
        arrive after reading only the centre. Ties in distance come in ``(cx, cz)`` order.
        With ``encoded=True`` it yields the stored bytes (codec format) undecoded.
        """
        cx, cz = _chunk_coord(cx, "cx"), _chunk_coord(cz, "cz")
        radius = as_coord(radius, "radius")
        if radius < 0:
            raise CoordinateError(f"radius must be >= 0, got {radius}")
        if not (
            _INT32_MIN <= cx - radius
            and cx + radius <= _INT32_MAX
            and _INT32_MIN <= cz - radius
            and cz + radius <= _INT32_MAX
        ):
            raise CoordinateError(
                f"the square of radius {radius} around ({cx}, {cz}) leaves the chunk "
                f"coordinate range [{_INT32_MIN}, {_INT32_MAX}]"
            )
        return self._stream(cx, cz, radius, encoded)

    def _stream(
        self, cx: int, cz: int, radius: int, encoded: bool
    ) -> Iterator[tuple[int, int, Any]]:
        # (d2, cx, cz, version, band it was read in), sorted
        pending: list[tuple[int, int, int, int, int]] = []
        inner = -1  # Chebyshev radius already read
        thickness = 2
        band = 0
        # Versions read in bands up to this one have waited while the consumer held a
        # yielded chunk: a write may have committed since, so they are read again.
        waited = -1
        while inner < radius:
            outer = min(radius, inner + thickness)
            rects = _band_rects(cx, cz, inner, outer)
            with self._read_connection() as conn:
                rows = self._db_versions(conn, rects)
            band += 1
            pending.extend(((x - cx) ** 2 + (z - cz) ** 2, x, z, v, band) for x, z, v in rows)
            pending.sort()
            inner = outer
            # Any position not read yet is at Chebyshev distance > inner, hence Euclidean
            # distance >= inner + 1: everything nearer than that is final.
            limit = (inner + 1) ** 2 if inner < radius else math.inf
            cut = 0
            while cut < len(pending) and pending[cut][0] < limit:
                cut += 1
            ready, pending = pending[:cut], pending[cut:]
            for start in range(0, len(ready), self.batch_size):
                batch = ready[start : start + self.batch_size]
                refresh = min(item[4] for item in batch) <= waited
                yield from self._stream_batch(batch, encoded, refresh)
                waited = band
            # Grow the bands while they hold few stored chunks (a sparse world is crossed in
            # a few queries); keep about _STREAM_BAND_CHUNKS rows per band where it is dense.
            area = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in rects)
            density = max(len(rows) / area, 1e-6)
            fits = int(_STREAM_BAND_CHUNKS / density) // (8 * max(1, inner))
            thickness = max(1, min(2 * thickness, fits))

    def _stream_batch(
        self, batch: Sequence[tuple[int, int, int, int, int]], encoded: bool, refresh: bool
    ) -> Iterator[tuple[int, int, Any]]:
        versions = [(x, z, v) for _, x, z, v, _ in batch]
        if refresh:
            with self._read_connection() as conn:
                current = self._db_versions_of(conn, [(x, z) for x, z, _ in versions])
            now = {(x, z): v for x, z, v in current}
            # Same order; chunks deleted since are dropped.
            versions = [(x, z, now[(x, z)]) for x, z, _ in versions if (x, z) in now]
        if encoded:
            blobs: dict[Key, bytes] = {}
            if self._redis is not None:
                blobs.update(self._redis.get_encoded_many(self._world_key, versions))
            missing = [(x, z) for x, z, _ in versions if (x, z) not in blobs]
            if missing:
                with self._read_connection() as conn:
                    rows = self._db_data(conn, missing)
                for x, z, _, data in rows:
                    blobs[(x, z)] = data
                if self._redis is not None and rows:
                    self._redis.put_many(
                        self._world_key, ((x, z, v, data, None) for x, z, v, data in rows)
                    )
            for x, z, _ in versions:
                blob = blobs.get((x, z))
                if blob is not None:  # deleted since its version was read
                    yield x, z, blob
            return
        with self._read_connection() as conn:
            found = self._resolve(conn, versions)
        for x, z, _ in versions:
            array = found.get((x, z))
            if array is not None:
                yield x, z, array

    def get_block(self, x: int, y: int, z: int) -> dict[str, Any] | None:
        """The state of block ``(x, y, z)`` in dict form (``{"type": "air"}`` for air), or
        None when its chunk is not stored."""
        cx, cz, lx, ly, lz = self._block_coords(x, y, z)
        array = self.get(cx, cz)
        if array is None:
            return None
        state_id = int(array[ly, lz, lx])
        with self._read_connection() as conn:
            states = lookup_states(conn, self.world_id, [state_id])
        return states[state_id]

    # ------------------------------------------------------------------ writes

    def put(self, cx: int, cz: int, blocks: Blocks) -> None:
        """Insert or replace chunk ``(cx, cz)``."""
        cx, cz = _chunk_coord(cx, "cx"), _chunk_coord(cz, "cz")
        blocks = self._check_blocks(blocks, f"put({cx}, {cz})")
        data = encode_chunk(blocks)
        written = self._in_write_transaction(lambda conn: self._db_upsert(conn, [(cx, cz, data)]))
        # The caller keeps its (writable) array: the cache gets a copy.
        self._lru.put_many(((self._lru_key(cx, cz), v, blocks) for (cx, cz), v in written.items()))
        if self._redis is not None:
            self._redis.put_many(
                self._world_key, ((cx, cz, v, data, blocks) for (cx, cz), v in written.items())
            )

    def put_many(self, items: Iterable[tuple[int, int, Blocks]]) -> int:
        """Insert or replace every ``(cx, cz, blocks)`` of ``items`` in one transaction.

        ``items`` is consumed lazily and encoded batch by batch, so memory stays bounded by
        one batch of encoded chunks whatever its length. Returns how many items were written.
        """
        if isinstance(items, Mapping):
            raise ValidationError(
                "put_many takes an iterable of (cx, cz, blocks) tuples, not a mapping",
                field="items",
            )
        items = _iterate(items, "put_many", "items", "(cx, cz, blocks)")

        def flush(conn: Connection, batch: dict[Key, bytes]) -> None:
            self._db_bulk_upsert(conn, [(x, z, d) for (x, z), d in batch.items()])
            # Versions keep stale entries from ever being served; this only frees their
            # memory, so it is done per batch (keeping every key to the end would not be
            # bounded) and even if the transaction later rolls back.
            for cx, cz in batch:
                self._lru.discard(self._lru_key(cx, cz))
            if self._redis is not None:
                self._redis.discard_many(self._world_key, list(batch))

        def work(conn: Connection) -> int:
            count = 0
            batch: dict[Key, bytes] = {}
            for item in items:
                cx, cz, blocks = self._unpack_item(item, count)
                where = f"put_many item {count} ({cx}, {cz})"
                # Later items win over earlier ones with the same key, as sequential puts would.
                batch[(cx, cz)] = encode_chunk(self._check_blocks(blocks, where))
                count += 1
                if len(batch) >= self.batch_size:
                    flush(conn, batch)
                    batch = {}
            if batch:
                flush(conn, batch)
            return count

        # A one-shot iterable cannot be replayed: no retry loop here.
        count: int = self._write_once(work)
        return count

    def _unpack_item(self, item: object, index: int) -> tuple[int, int, Any]:
        try:
            cx, cz, blocks = cast("tuple[Any, Any, Any]", item)
        except (TypeError, ValueError):
            raise ValidationError(
                f"put_many item {index} must be a (cx, cz, blocks) tuple, got "
                f"{type(item).__name__}",
                field="items",
            ) from None
        return _chunk_coord(cx, "cx"), _chunk_coord(cz, "cz"), blocks

    def delete(self, cx: int, cz: int) -> bool:
        """Delete chunk ``(cx, cz)``; whether it was stored."""
        cx, cz = _chunk_coord(cx, "cx"), _chunk_coord(cz, "cz")
        existed: bool = self._in_write_transaction(lambda conn: self._db_delete(conn, cx, cz))
        self._lru.discard(self._lru_key(cx, cz))
        if self._redis is not None:
            self._redis.discard_many(self._world_key, [(cx, cz)])
        return existed

    def set_block(self, x: int, y: int, z: int, state: str | Mapping[str, Any]) -> None:
        """Set one block; a chunk that is not stored is created (air elsewhere)."""
        self.set_blocks([(x, y, z, state)])

    def set_blocks(self, edits: Iterable[tuple[int, int, int, Any]]) -> int:
        """Apply ``(x, y, z, state)`` edits in one transaction, grouped per chunk.

        Later edits of the same block win. Chunks that are not stored are created. Rows are
        locked (PostgreSQL ``FOR UPDATE``, SQLite ``BEGIN IMMEDIATE``) for the
        read-modify-write, so concurrent editors of one chunk never lose each other's edits.
        Returns the number of edits applied.
        """
        plan = self._plan_edits(_iterate(edits, "set_blocks", "edits", "(x, y, z, state)"))
        if plan is None:
            return 0
        written, arrays, encoded = self._in_write_transaction(lambda conn: self._apply(conn, plan))
        self._cache_written(written, arrays, encoded)
        return plan.count

    def _plan_edits(self, edits: Iterable[tuple[int, int, int, Any]]) -> _EditPlan | None:
        xs: list[int] = []
        ys: list[int] = []
        zs: list[int] = []
        slots: list[int] = []
        states: list[Any] = []
        by_name: dict[str, int] = {}
        # id(obj) -> (obj kept alive, slot, a deep copy of obj as it was then)
        by_object: dict[int, tuple[Any, int, Any]] = {}
        by_key: dict[str, int] = {}
        for index, edit in enumerate(edits):
            try:
                x, y, z, state = edit
            except (TypeError, ValueError):
                raise ValidationError(
                    f"edit {index} must be an (x, y, z, state) tuple, got {edit!r}"[:200],
                    field="edits",
                ) from None
            xs.append(x)
            ys.append(y)
            zs.append(z)
            if type(state) is str:
                slot = by_name.get(state)
                if slot is None:
                    slot = self._state_slot(state, states, by_key)
                    by_name[state] = slot
            else:
                cached = by_object.get(id(state))
                # The same dict may come back mutated (a generator reusing one): the memo
                # holds only while it still equals the state it was normalized from.
                if cached is None or state != cached[2]:
                    slot = self._state_slot(state, states, by_key)
                    by_object[id(state)] = (state, slot, copy.deepcopy(state))
                else:
                    slot = cached[1]
            slots.append(slot)
        if not xs:
            return None
        try:
            ax = np.array(xs)
            ay = np.array(ys)
            az = np.array(zs)
        except (OverflowError, ValueError, TypeError):
            ax = ay = az = np.array([], dtype=object)
        for arr, values, name in ((ax, xs, "x"), (ay, ys, "y"), (az, zs, "z")):
            # numpy turns [True, 5] into integers: bools must be looked for in the input.
            if arr.dtype.kind not in "iu" or arr.ndim != 1 or bool in set(map(type, values)):
                # Slow path only to name the offending edit precisely.
                for index, value in enumerate(values):
                    try:
                        as_coord(value, name)
                    except CoordinateError as exc:
                        raise CoordinateError(f"edit {index}: {exc}") from None
                raise CoordinateError(f"edit coordinates {name} must be integers in int64 range")
        ax, ay, az = ax.astype(np.int64), ay.astype(np.int64), az.astype(np.int64)
        bad_y = (ay < self.min_y) | (ay >= self.min_y + self.height)
        if bad_y.any():
            index = int(np.argmax(bad_y))
            raise CoordinateError(
                f"edit {index}: y = {int(ay[index])} is outside this world's height range "
                f"[{self.min_y}, {self.min_y + self.height}) (min_y = {self.min_y}, "
                f"height = {self.height})"
            )
        acx, acz = ax >> 4, az >> 4
        bad_c = (acx < _INT32_MIN) | (acx > _INT32_MAX) | (acz < _INT32_MIN) | (acz > _INT32_MAX)
        if bad_c.any():
            index = int(np.argmax(bad_c))
            raise CoordinateError(
                f"edit {index}: block ({int(ax[index])}, {int(ay[index])}, {int(az[index])}) "
                f"is outside the world's chunk range"
            )
        # One int64 per chunk, then one per (chunk, block): the last edit of a block wins.
        chunk_code = (acx << 32) | (acz - _INT32_MIN)  # sorts as (cx, cz)
        chunks, inverse = np.unique(chunk_code, return_inverse=True)
        cells = self.height * 256
        flat = (ay - self.min_y) * 256 + (az & 15) * 16 + (ax & 15)
        code = inverse.astype(np.int64) * cells + flat
        uniq, first_rev = np.unique(code[::-1], return_index=True)
        last = len(code) - 1 - first_rev
        slot_arr = np.asarray(slots, dtype=np.int64)[last]
        bounds = np.searchsorted(uniq // cells, np.arange(len(chunks) + 1))
        keys = [(int(c >> 32), int((c & 0xFFFFFFFF) + _INT32_MIN)) for c in chunks.tolist()]
        return _EditPlan(
            count=len(xs),
            states=states,
            keys=keys,
            flat=uniq % cells,
            slots=slot_arr,
            bounds=bounds,
        )

    @staticmethod
    def _state_slot(state: Any, states: list[Any], by_key: dict[str, int]) -> int:
        normalized = normalize_state(state)
        key = state_key(normalized)
        slot = by_key.get(key)
        if slot is None:
            slot = by_key[key] = len(states)
            states.append(normalized)
        return slot

    def _apply(
        self, conn: Connection, plan: _EditPlan
    ) -> tuple[dict[Key, int], dict[Key, Blocks], dict[Key, bytes]]:
        ids = np.asarray(intern_states(conn, self.world_id, plan.states), dtype=np.int64)
        if len(ids) and int(ids.max()) > _U32_MAX:
            raise ConcurrencyError("block-state id space exhausted (more than 2**32 states)")
        values = ids[plan.slots] if len(ids) else plan.slots
        position = {key: i for i, key in enumerate(plan.keys)}

        def edited(key: Key, base: Blocks | None) -> Blocks:
            i = position[key]
            lo, hi = int(plan.bounds[i]), int(plan.bounds[i + 1])
            vals = values[lo:hi]
            need32 = len(vals) and int(vals.max()) > _U16_MAX
            if base is None:
                array = np.zeros(self._shape, dtype=np.uint32 if need32 else np.uint16)
            elif need32 and base.dtype == np.uint16:
                array = base.astype(np.uint32)
            else:
                array = base  # freshly decoded for this transaction: edited in place
            array.reshape(-1)[plan.flat[lo:hi]] = vals
            array.flags.writeable = False
            return array

        written: dict[Key, int] = {}
        arrays: dict[Key, Blocks] = {}
        encoded: dict[Key, bytes] = {}
        todo = list(plan.keys)
        while todo:
            locked = self._db_lock(conn, todo)
            decoded = self._decode_rows(locked, readonly=False)
            updates = []
            for (cx, cz, _, _), base in zip(locked, decoded, strict=True):
                array = edited((cx, cz), base)
                arrays[(cx, cz)] = array
                encoded[(cx, cz)] = data = encode_chunk(array)
                updates.append((cx, cz, data))
            if updates:
                written.update(self._db_update(conn, updates))
            present = {(cx, cz) for cx, cz, _, _ in locked}
            absent = [key for key in todo if key not in present]
            if not absent:
                break
            inserts = []
            for key in absent:
                array = edited(key, None)
                arrays[key] = array
                encoded[key] = data = encode_chunk(array)
                inserts.append((key[0], key[1], data))
            inserted = self._db_insert_new(conn, inserts)
            written.update(inserted)
            # A concurrent writer created the others first: lock and edit its rows instead.
            todo = [key for key in absent if key not in inserted]
        return written, arrays, encoded


class _EditPlan:
    """``set_blocks`` edits validated, deduplicated and grouped per chunk (sorted)."""

    __slots__ = ("bounds", "count", "flat", "keys", "slots", "states")

    def __init__(
        self,
        *,
        count: int,
        states: list[Any],
        keys: list[Key],
        flat: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        bounds: npt.NDArray[np.intp],
    ) -> None:
        self.count = count
        self.states = states
        self.keys = keys
        self.flat = flat
        self.slots = slots
        self.bounds = bounds


def _iterate(things: Iterable[_T], where: str, field: str, what: str) -> Iterator[_T]:
    try:
        return iter(things)
    except TypeError:
        raise ValidationError(
            f"{where} takes an iterable of {what} tuples, got {type(things).__name__}",
            field=field,
        ) from None


def _band_rects(cx: int, cz: int, inner: int, outer: int) -> list[Rect]:
    """The positions at Chebyshev distance in ``(inner, outer]`` of ``(cx, cz)``, as rects."""
    if inner < 0:
        return [(cx - outer, cz - outer, cx + outer, cz + outer)]
    return [
        (cx - outer, cz - outer, cx + outer, cz - inner - 1),  # bottom strip (full width)
        (cx - outer, cz + inner + 1, cx + outer, cz + outer),  # top strip (full width)
        (cx - outer, cz - inner, cx - inner - 1, cz + inner),  # left
        (cx + inner + 1, cz - inner, cx + outer, cz + inner),  # right
    ]
