"""``ChunkStore``: one world's chunks, over a backend and the cache tiers.

Coherence rests on the ``version`` column alone (docs/storage.md). Every read first asks the
backend for the current versions of what it wants (``_reads``), then the chunk source for
exactly those versions: the LRU tier, the Redis tier, then the database (``caches``). Writes
run in one transaction of the backend (``backends``), retried after transient conflicts;
after the commit they hand the new versions to the tiers, which only saves the next reader a
trip: correctness never needs it. Block edits are planned in ``_edits``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine

from voxeldb._ids import as_uuid
from voxeldb._summary import summarize
from voxeldb.chunks import _journal_sql as journal_sql
from voxeldb.chunks._edits import apply_edits, plan_edits
from voxeldb.chunks._geometry import (
    DEFAULT_HEIGHT,
    DEFAULT_MIN_Y,
    Blocks,
    Key,
    block_coords,
    check_blocks,
    check_shape,
    check_square,
    chunk_coord,
)
from voxeldb.chunks._history import rollback, watch
from voxeldb.chunks._journal import (
    DELETE,
    PUT,
    Change,
    JournalWriter,
    RollbackReport,
    check_actor,
    check_area,
    check_time,
    digest,
    iter_changes,
)
from voxeldb.chunks._journal_sql import EntryRow
from voxeldb.chunks._reads import DatabaseSource, Decoder, Reader
from voxeldb.chunks._registry import lookup_states
from voxeldb.chunks._summary_reads import SummaryRead, read_summaries
from voxeldb.chunks.backends import Backend, open_backend
from voxeldb.chunks.caches import ChunkLRU, RedisChunkCache, with_caches
from voxeldb.chunks.codec import chunk_encoder
from voxeldb.errors import CoordinateError, ValidationError

__all__ = ["ChunkStore"]

_T = TypeVar("_T")

PUT_BATCH = 256
"""``put_many`` writes at most this many chunks per statement: small enough that encoding
the next batch overlaps writing this one, large enough that the round trips per batch cost
little."""
DEFAULT_LRU_BYTES = 64 * 1024 * 1024
"""The LRU of a store made without one (``voxeldb.connect`` shares one per Database)."""


class ChunkStore:
    """The chunks of one world; get one from ``voxeldb.connect(...).chunks(world_id)``.

    Arrays returned by reads are read-only and may be shared with the in-process cache (a hot
    region read is then free of copies); call ``.copy()`` to edit one.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        height: int = DEFAULT_HEIGHT,
        min_y: int = DEFAULT_MIN_Y,
        lru: ChunkLRU | None = None,
        redis: RedisChunkCache | None = None,
        batch_size: int = 1024,
        actor: str | None = None,
        compression: str = "lz4",
        compression_level: int | None = None,
    ) -> None:
        height, min_y = check_shape(height, min_y)
        self._encode: Callable[[Blocks], bytes] = chunk_encoder(compression, compression_level)
        self.compression = compression
        """How this store writes chunks (a world's ``"compression"`` setting)."""
        self.compression_level = compression_level
        self.actor = check_actor(actor)
        """Recorded in the journal with every change made through this store."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(
                f"batch_size must be >= 1, got {batch_size!r}", field="batch_size"
            )
        self._backend = backend
        self.world_id = backend.world_id
        self.height = height
        self.min_y = min_y
        self.batch_size = batch_size
        self._shape = (height, 16, 16)
        self._lru = lru if lru is not None else ChunkLRU(DEFAULT_LRU_BYTES)
        self._redis = redis
        # Decoded into the LRU's recycled memory: a cold read is spared fresh pages.
        decode = Decoder(self._shape, self.world_id, self._lru)
        self._source = with_caches(
            DatabaseSource(backend, decode),
            self.world_id.hex,
            self._shape,
            lru=self._lru,
            decode=decode,
            redis=redis,
        )
        self._reader = Reader(backend, self._source, batch_size)
        self._edit_cache = _CacheForEdits(self._lru, self.world_id)

    @classmethod
    def open(cls, engine: Engine, world_id: uuid.UUID | str, **kwargs: Any) -> ChunkStore:
        """The store of world ``world_id`` on ``engine``'s backend (from the registry)."""
        return cls(open_backend(engine, as_uuid(world_id, "world_id")), **kwargs)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.backend} world={self.world_id} "
            f"height={self.height} min_y={self.min_y}>"
        )

    @property
    def backend(self) -> str:
        """The backend's name: ``"postgresql"`` or ``"sqlite"``."""
        return self._backend.name

    @property
    def engine(self) -> Engine:
        return self._backend.engine

    @property
    def lru(self) -> ChunkLRU:
        """The in-process cache of decoded chunks (shared by the stores of one ``Database``)."""
        return self._lru

    @property
    def redis(self) -> RedisChunkCache | None:
        """The shared Redis tier, or None."""
        return self._redis

    # ------------------------------------------------------------------ reads

    def get(self, cx: int, cz: int) -> Blocks | None:
        """Chunk ``(cx, cz)``, or None when it is not stored."""
        cx, cz = chunk_coord(cx, "cx"), chunk_coord(cz, "cz")
        return self._reader.get(cx, cz)

    def region(self, cx0: int, cz0: int, cx1: int, cz1: int) -> dict[Key, Blocks]:
        """Every stored chunk of the inclusive rectangle ``[cx0, cx1] x [cz0, cz1]``."""
        cx0, cz0 = chunk_coord(cx0, "cx0"), chunk_coord(cz0, "cz0")
        cx1, cz1 = chunk_coord(cx1, "cx1"), chunk_coord(cz1, "cz1")
        if cx0 > cx1 or cz0 > cz1:
            raise CoordinateError(
                f"region({cx0}, {cz0}, {cx1}, {cz1}): need cx0 <= cx1 and cz0 <= cz1"
            )
        return self._reader.region(cx0, cz0, cx1, cz1)

    def stream(
        self, cx: int, cz: int, radius: int, *, encoded: bool = False
    ) -> Iterator[tuple[int, int, Any]]:
        """Stored chunks of the square of ``radius`` around ``(cx, cz)``, nearest first.

        Lazy: the square is read in bands of growing Chebyshev radius, so the first chunks
        arrive after reading only the centre. Ties in distance come in ``(cx, cz)`` order.
        With ``encoded=True`` it yields the stored bytes (codec format) undecoded.
        """
        cx, cz, radius = check_square(cx, cz, radius)
        return self._reader.stream(cx, cz, radius, encoded)

    def get_block(self, x: int, y: int, z: int) -> dict[str, Any] | None:
        """The state of block ``(x, y, z)`` in dict form (``{"type": "air"}`` for air), or
        None when its chunk is not stored."""
        cx, cz, lx, ly, lz = block_coords(x, y, z, self.height, self.min_y)
        array = self.get(cx, cz)
        if array is None:
            return None
        state_id = int(array[ly, lz, lx])
        with self._backend.read_connection() as conn:
            states = lookup_states(conn, self.world_id, [state_id])
        return states[state_id]

    def summaries(
        self, cx0: int, cz0: int, cx1: int, cz1: int, *, rebuild: bool = False
    ) -> SummaryRead:
        """The map summaries of the stored chunks of the inclusive rectangle (top and under
        block of every column, ``voxeldb._summary``), one query; chunks whose summary
        is missing or stale are decoded instead, and with ``rebuild=True`` their summaries
        are written back."""
        cx0, cz0 = chunk_coord(cx0, "cx0"), chunk_coord(cz0, "cz0")
        cx1, cz1 = chunk_coord(cx1, "cx1"), chunk_coord(cz1, "cz1")
        return read_summaries(self._backend, (cx0, cz0, cx1, cz1), self._shape, rebuild=rebuild)

    # ------------------------------------------------------------------ writes

    def put(self, cx: int, cz: int, blocks: Blocks) -> None:
        """Insert or replace chunk ``(cx, cz)``."""
        cx, cz = chunk_coord(cx, "cx"), chunk_coord(cz, "cz")
        blocks = check_blocks(blocks, self._shape, f"put({cx}, {cz})")
        data = self._encode(blocks)
        summary = summarize(blocks)
        backend = self._backend

        def work(conn: Connection) -> dict[Key, int]:
            journal = self._journal()
            if journal is None:
                return backend.upsert(conn, [(cx, cz, data, summary)])
            journal.reserve(1)
            # Locked and read first: the journal keeps the bytes a put replaces.
            before = backend.lock(conn, [(cx, cz)])
            written = backend.upsert(conn, [(cx, cz, data, summary)])
            prior = bytes(before[0][3]) if before else None
            journal.add(EntryRow(cx, cz, PUT, written[(cx, cz)], None, prior, digest(data)))
            journal.finish(conn)
            return written

        written = backend.write(work)
        # The caller keeps its (writable) array: the caches take a copy.
        self._source.written([(x, z, v, data, blocks) for (x, z), v in written.items()])

    def put_many(self, items: Iterable[tuple[int, int, Blocks]]) -> int:
        """Insert or replace every ``(cx, cz, blocks)`` of ``items`` in one transaction.

        ``items`` is consumed lazily and encoded batch by batch, so memory stays bounded by
        two batches of encoded chunks whatever its length: while one batch is written (by a
        worker thread, COPY on PostgreSQL), the next is encoded. Returns how many items were
        written.
        """
        if isinstance(items, Mapping):
            raise ValidationError(
                "put_many takes an iterable of (cx, cz, blocks) tuples, not a mapping",
                field="items",
            )
        iterator = _iterate(items, "put_many", "items", "(cx, cz, blocks)")
        backend, source, encode = self._backend, self._source, self._encode
        size = min(self.batch_size, PUT_BATCH)

        def flush(
            conn: Connection, batch: dict[Key, tuple[bytes, bytes]], journal: JournalWriter | None
        ) -> None:
            written = backend.bulk_upsert(conn, [(x, z, d, s) for (x, z), (d, s) in batch.items()])
            if journal is not None:
                for (x, z), (d, _) in batch.items():
                    version, prior = written[(x, z)]
                    journal.add(EntryRow(x, z, PUT, version, None, prior, digest(d)))
                journal.spill(conn)
            # Versions keep stale entries from ever being served; this only frees their
            # memory, so it is done per batch (keeping every key to the end would not be
            # bounded) and even if the transaction later rolls back.
            source.discard(list(batch))

        def work(conn: Connection) -> int:
            journal = self._journal()
            count = 0
            batch: dict[Key, tuple[bytes, bytes]] = {}
            writing: Future[None] | None = None
            # Items are taken and encoded on the caller's thread (a generator may reuse its
            # array for the next item; encoding at once needs no copy). Only the connection
            # moves to the worker, and never while this thread uses it: each write is waited
            # for before the next starts, and leaving the pool waits for the last one.
            with ThreadPoolExecutor(1, thread_name_prefix="voxeldb-put_many") as pool:
                for item in iterator:
                    cx, cz, blocks = _unpack_item(item, count)
                    where = f"put_many item {count} ({cx}, {cz})"
                    blocks = check_blocks(blocks, self._shape, where)
                    # Later items win over earlier ones with the same key, as sequential
                    # puts would (batches are written in order).
                    batch[(cx, cz)] = (encode(blocks), summarize(blocks))
                    count += 1
                    if len(batch) >= size:
                        if writing is not None:
                            writing.result()
                        writing = pool.submit(flush, conn, batch, journal)
                        batch = {}
                if writing is not None:
                    writing.result()
            if batch:
                flush(conn, batch, journal)
            if journal is not None:
                journal.finish(conn)
            return count

        # A one-shot iterable cannot be replayed: no retry here.
        return backend.write_once(work)

    def delete(self, cx: int, cz: int) -> bool:
        """Delete chunk ``(cx, cz)``; whether it was stored."""
        cx, cz = chunk_coord(cx, "cx"), chunk_coord(cz, "cz")
        backend = self._backend

        def work(conn: Connection) -> bool:
            journal = self._journal()
            if journal is not None:
                journal.reserve(1)
            prior = backend.delete(conn, cx, cz)
            if prior is not None and journal is not None:
                journal.add(EntryRow(cx, cz, DELETE, None, None, prior, None))
                journal.finish(conn)
            return prior is not None

        existed = backend.write(work)
        self._source.discard([(cx, cz)])
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
        if not isinstance(edits, list | tuple):  # a list is split into columns at once
            edits = _iterate(edits, "set_blocks", "edits", "(x, y, z, state)")
        plan = plan_edits(edits, self.height, self.min_y)
        if plan is None:
            return 0
        backend, shape = self._backend, self._shape
        written, arrays, encoded = backend.write(
            lambda conn: apply_edits(
                conn, backend, plan, shape, self._journal(), self._edit_cache, self._encode
            )
        )
        # Made for this write and read-only: the caches keep them without a copy.
        self._source.written(
            [(x, z, v, encoded[(x, z)], arrays[(x, z)]) for (x, z), v in written.items()],
            owned=True,
        )
        return plan.count

    # ------------------------------------------------------------------ journal

    def _journal(self) -> JournalWriter | None:
        return JournalWriter.open(self._backend.engine, self.world_id, self.actor)

    def head(self) -> int:
        """The newest ``seq`` of this world's journal, 0 when it has none."""
        with self._backend.read_connection() as conn:
            return journal_sql.head(conn, self.world_id)

    def changes(
        self,
        since: int = 0,
        *,
        area: tuple[int, int, int, int] | None = None,
        actor: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[Change]:
        """Committed changes with ``seq > since``, ascending, matching every filter given:
        ``area`` an inclusive chunk rectangle, ``actor`` exactly, ``start`` (inclusive) and
        ``end`` (exclusive) bounding the time. Read lazily, a page at a time."""
        since = _seq(since, "since")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValidationError(f"limit must be an integer >= 0, got {limit!r}", field="limit")
        return self._changes(
            since=since,
            area=check_area(area),
            actor=check_actor(actor),
            start=check_time(start, "start"),
            end=check_time(end, "end"),
            limit=limit,
        )

    def _changes(self, *, since: int, limit: int | None = None, **filters: Any) -> Iterator[Change]:
        return iter_changes(
            self._backend.read_connection, self.world_id, self.min_y, since=since, limit=limit,
            **filters,
        )  # fmt: skip

    def watch(
        self,
        since: int | None = None,
        *,
        area: tuple[int, int, int, int] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Change]:
        """The changes after ``since`` (None: after the head now), then each new change as it
        commits, in ascending ``seq``, each once; stops after ``timeout`` seconds with
        nothing new (None: never). PostgreSQL wakes on NOTIFY, SQLite polls."""
        start = None if since is None else _seq(since, "since")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise ValidationError(f"timeout must be >= 0 seconds, got {timeout!r}", field="timeout")
        return watch(self, start, check_area(area), None if timeout is None else float(timeout))

    def rollback(
        self,
        *,
        actor: str | None = None,
        area: tuple[int, int, int, int] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        preview: bool = False,
    ) -> RollbackReport:
        """Undo the changes matching every filter given (at least one), newest first: a block
        goes back only where it still holds the change's new state, otherwise it is a
        conflict (left alone, counted); puts and deletes likewise at chunk level. The undo is
        journaled under this store's actor; ``preview=True`` writes nothing."""
        if actor is None and area is None and start is None and end is None:
            raise ValidationError(
                "rollback needs at least one filter (actor, area, start or end)", field="filters"
            )
        return rollback(
            self,
            actor=check_actor(actor),
            area=check_area(area),
            start=check_time(start, "start"),
            end=check_time(end, "end"),
            preview=bool(preview),
        )


def _seq(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"{field} must be a seq (an integer >= 0), got {value!r}", field=field
        )
    return int(value)


def _unpack_item(item: object, index: int) -> tuple[int, int, Any]:
    try:
        cx, cz, blocks = cast("tuple[Any, Any, Any]", item)
    except (TypeError, ValueError):
        raise ValidationError(
            f"put_many item {index} must be a (cx, cz, blocks) tuple, got {type(item).__name__}",
            field="items",
        ) from None
    return chunk_coord(cx, "cx"), chunk_coord(cz, "cz"), blocks


def _iterate(things: Iterable[_T], where: str, field: str, what: str) -> Iterator[_T]:
    try:
        return iter(things)
    except TypeError:
        raise ValidationError(
            f"{where} takes an iterable of {what} tuples, got {type(things).__name__}",
            field=field,
        ) from None


class _CacheForEdits:
    """The in-process cache as ``set_blocks`` uses it (``_edits.EditCache``)."""

    __slots__ = ("_lru", "_world")

    def __init__(self, lru: ChunkLRU, world_id: uuid.UUID) -> None:
        self._lru = lru
        self._world = world_id.hex

    def versions(self, keys: list[Key]) -> dict[Key, int]:
        held = self._lru.peek_many([(self._world, cx, cz) for cx, cz in keys])
        return {
            (key[1], key[2]): version  # type: ignore[index]
            for key, (version, array, _) in held.items()
            if array is not None
        }

    def writable(self, pairs: list[tuple[Key, int]]) -> dict[Key, Blocks]:
        wanted = (((self._world, cx, cz), v) for (cx, cz), v in pairs)
        return {(k[1], k[2]): a for k, a in self._lru.writable_many(wanted).items()}  # type: ignore[index]
