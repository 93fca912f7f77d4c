"""``watch`` (the live feed) and ``rollback`` (undo by actor, time and area) of a store.

docs/journal.md: the journal is the truth; PostgreSQL ``NOTIFY`` (SQLite: a poll) only wakes
a watcher, which then reads the journal from the last seq it handed out. Rollback works
chunk by chunk on locked rows, newest change first, and writes every chunk it restores in
one transaction, journaled like any write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection

from voxeldb._summary import summarize_many
from voxeldb.chunks import _journal_sql as sql
from voxeldb.chunks._geometry import Key
from voxeldb.chunks._journal import (
    DELETE,
    EDIT,
    PUT,
    Change,
    JournalWriter,
    RollbackReport,
    digest,
    pack_edits,
    unpack_edits,
)
from voxeldb.chunks._journal_sql import EntryRow
from voxeldb.chunks.codec import decode_chunk

if TYPE_CHECKING:
    from voxeldb.chunks._store import ChunkStore

__all__ = ["rollback", "watch"]

POLL_SECONDS = 0.025
"""SQLite: how often a watcher looks at the head."""
REREAD_SECONDS = 1.0
"""PostgreSQL: a watcher reads the head at least this often, notified or not."""

_U16_MAX = 2**16 - 1


class _Listener:
    """PostgreSQL: a connection of its own that LISTENs on the journal channel."""

    def __init__(self, store: ChunkStore) -> None:
        import psycopg

        url = store.engine.url.set(drivername="postgresql")
        self._conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        self._conn.execute(f"LISTEN {sql.CHANNEL}")

    def wait(self, seconds: float) -> None:
        for _ in self._conn.notifies(timeout=max(seconds, 0.0), stop_after=1):
            break

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def watch(
    store: ChunkStore,
    since: int | None,
    area: tuple[int, int, int, int] | None,
    timeout: float | None,
) -> Iterator[Change]:
    """Listens and reads the head now (when called), then returns the feed."""
    # Listening before the first read: a commit between the read and the wait still wakes it.
    listener = _Listener(store) if store.backend == "postgresql" else None
    try:
        last = store.head() if since is None else since
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    return _feed(store, listener, last, area, timeout)


def _feed(
    store: ChunkStore,
    listener: _Listener | None,
    last: int,
    area: tuple[int, int, int, int] | None,
    timeout: float | None,
) -> Iterator[Change]:
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            top = store.head()
            if top > last:
                for change in store._changes(since=last, area=area, upto=top):
                    yield change
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
                # Every seq up to a committed head is committed (docs/journal.md).
                last = top
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = REREAD_SECONDS if listener is not None else POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - now)
            if listener is not None:
                listener.wait(wait)
            else:
                time.sleep(wait)
    finally:
        if listener is not None:
            listener.close()


# ---------------------------------------------------------------------------- rollback


class _Chunk:
    __slots__ = ("array", "chunk_level", "data", "modified", "original", "version")

    def __init__(self, version: int | None, data: bytes | None, shape: tuple[int, ...]) -> None:
        self.version = version
        self.data = data
        self.original = None if data is None else decode_chunk(data)
        self.array = None if self.original is None else self.original.copy()
        self.modified = False
        self.chunk_level = False


def _plan(
    rows_by_chunk: dict[Key, list[tuple[Any, ...]]],
    current: dict[Key, tuple[int, bytes]],
    shape: tuple[int, int, int],
    encode: Callable[[Any], bytes],
) -> tuple[dict[Key, _Chunk], int, int]:
    """Undo every chunk's rows newest first on its current state; chunks, restored, conflicts."""
    chunks: dict[Key, _Chunk] = {}
    restored = conflicts = 0
    for key, rows in rows_by_chunk.items():
        version, data = current.get(key, (None, None))
        chunk = chunks[key] = _Chunk(version, data, shape)
        for row in reversed(rows):
            kind, row_version, edits, prior, row_digest = row[4], row[5], row[7], row[8], row[9]
            if kind == EDIT:
                flat, old, new = unpack_edits(bytes(edits))
                if chunk.array is None:
                    conflicts += len(flat)
                    continue
                if len(old) and int(old.max()) > _U16_MAX and chunk.array.dtype == np.uint16:
                    chunk.array = chunk.array.astype(np.uint32)
                view = chunk.array.reshape(-1)
                ok = view[flat] == new
                n_ok = int(ok.sum())
                if n_ok:
                    view[flat[ok]] = old[ok]
                    chunk.modified = True
                restored += n_ok
                conflicts += len(flat) - n_ok
            elif kind == PUT:
                if chunk.array is None:
                    holds = False
                elif not chunk.modified and chunk.version == row_version:
                    holds = True
                else:
                    now = chunk.data if not chunk.modified else encode(chunk.array)
                    holds = row_digest is not None and digest(bytes(now or b"")) == bytes(
                        row_digest
                    )
                if not holds:
                    conflicts += 1
                    continue
                chunk.array = None if prior is None else decode_chunk(bytes(prior)).copy()
                chunk.modified = chunk.chunk_level = True
            elif kind == DELETE:
                if chunk.array is not None or prior is None:
                    conflicts += 1
                    continue
                chunk.array = decode_chunk(bytes(prior)).copy()
                chunk.modified = chunk.chunk_level = True
    return chunks, restored, conflicts


def rollback(
    store: ChunkStore,
    *,
    actor: str | None,
    area: tuple[int, int, int, int] | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    preview: bool,
) -> RollbackReport:
    backend = store._backend
    world_id: uuid.UUID = store.world_id
    rows_by_chunk: dict[Key, list[tuple[Any, ...]]] = {}
    last = 0
    with backend.read_connection() as conn:
        top = sql.head(conn, world_id)
        while True:
            rows = sql.select_entries(
                conn, world_id, since=last, limit=10_000, area=area, actor=actor,
                start=start, end=end, upto=top, prior=True,
            )  # fmt: skip
            for row in rows:
                rows_by_chunk.setdefault((int(row[2]), int(row[3])), []).append(row)
            if len(rows) < 10_000:
                break
            last = int(rows[-1][0])
    if not rows_by_chunk:
        return RollbackReport(blocks=0, chunks=0, conflicts=0)
    keys = sorted(rows_by_chunk)
    shape = store._shape

    def compute(conn: Connection, lock: bool) -> tuple[dict[Key, _Chunk], int, int]:
        found = backend.lock(conn, keys) if lock else backend.data(conn, keys)
        current = {(int(x), int(z)): (int(v), bytes(d)) for x, z, v, d in found}
        return _plan(rows_by_chunk, current, shape, store._encode)

    if preview:
        with backend.read_connection() as conn:
            chunks, restored, conflicts = compute(conn, False)
        written = sum(1 for c in chunks.values() if c.modified and _changed(c))
        return RollbackReport(blocks=restored, chunks=written, conflicts=conflicts)

    def work(conn: Connection) -> tuple[RollbackReport, list[Key]]:
        chunks, restored, conflicts = compute(conn, True)
        journal = JournalWriter.open(backend.engine, world_id, store.actor)
        todo = [(k, c) for k, c in chunks.items() if c.modified and _changed(c)]
        if journal is not None:
            journal.reserve(len(todo))
        updates: list[tuple[Key, _Chunk, bytes]] = []
        inserts: list[tuple[Key, _Chunk, bytes]] = []
        deletes: list[tuple[Key, _Chunk]] = []
        for key, chunk in todo:
            if chunk.array is None:
                deletes.append((key, chunk))
                continue
            data = store._encode(chunk.array)
            (updates if chunk.data is not None else inserts).append((key, chunk, data))
        versions: dict[Key, int] = {}
        if updates:
            summaries = summarize_many([c.array for _, c, _ in updates])  # type: ignore[misc]
            versions.update(
                backend.update(
                    conn,
                    [(k[0], k[1], d, sm) for (k, _, d), sm in zip(updates, summaries, strict=True)],
                )
            )
        if inserts:
            summaries = summarize_many([c.array for _, c, _ in inserts])  # type: ignore[misc]
            versions.update(
                backend.insert_new(
                    conn,
                    [(k[0], k[1], d, sm) for (k, _, d), sm in zip(inserts, summaries, strict=True)],
                )
            )
        for key, _chunk in deletes:
            backend.delete(conn, key[0], key[1])
        if journal is not None:
            for key, chunk, data in updates + inserts:
                if chunk.chunk_level or chunk.data is None:
                    journal.add(EntryRow(key[0], key[1], PUT, versions.get(key), None,
                                         chunk.data, digest(data)))  # fmt: skip
                else:
                    assert chunk.original is not None and chunk.array is not None
                    before = chunk.original.reshape(-1).astype(np.uint32)
                    after = chunk.array.reshape(-1).astype(np.uint32)
                    flat = np.flatnonzero(before != after)
                    blob = pack_edits(flat, before[flat], after[flat])
                    journal.add(EntryRow(key[0], key[1], EDIT, versions.get(key), blob,
                                         None, None))  # fmt: skip
            for key, chunk in deletes:
                journal.add(EntryRow(key[0], key[1], DELETE, None, None, chunk.data, None))
            journal.finish(conn)
        report = RollbackReport(blocks=restored, chunks=len(todo), conflicts=conflicts)
        return report, [k for k, _ in todo]

    report, touched = backend.write(work)
    store._source.discard(touched)
    return report


def _changed(chunk: _Chunk) -> bool:
    if chunk.array is None or chunk.original is None:
        return (chunk.array is None) != (chunk.original is None)
    return chunk.chunk_level or not np.array_equal(chunk.array, chunk.original)
