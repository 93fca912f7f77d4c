"""Parsed columns into a world: ids from the registry, chunks through ``put_many``, metadata.

Batch by batch: the states no column of the import has used before are interned in one
transaction, the columns become arrays of the world's ids (a numpy lookup per section),
``ChunkStore.put_many`` writes the batch in one transaction, and a second transaction sets
the batch's ``chunk_metadata`` (the source and its block entities / node metadata). A chunk
counts as imported once its metadata is set, so an import stopped between the two is
resumed correctly: the chunks without metadata are written again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, bindparam, select

from voxeldb.chunks import ChunkStore, intern_states, world_chunks_table
from voxeldb.ops._import._parsed import AIR_KEY, Column

if TYPE_CHECKING:
    from voxeldb import Database

__all__ = ["ImportProgress", "ImportReport", "existing_chunks", "write_columns"]

log = logging.getLogger("voxeldb.import")

WRITES_QUEUED = 1
"""Batches handed to the writer thread beyond the one it writes."""
MAX_MESSAGES = 1000
"""Damage messages a report keeps (all are counted, and all go to the progress watcher)."""

_wc = world_chunks_table
_SET_METADATA = (
    _wc.update()
    .where(
        and_(
            _wc.c.world_id == bindparam("w"),
            _wc.c.chunk_x == bindparam("x"),
            _wc.c.chunk_z == bindparam("z"),
        )
    )
    .values(chunk_metadata=bindparam("m"))
)


class ImportProgress(Protocol):
    """What ``import_world(..., progress=)`` is told (the CLI draws a bar from it)."""

    def started(self, total: int, unit: str) -> None:
        """``total`` units of work (Anvil: chunks the region files list; Luanti: columns)."""

    def advanced(self, n: int) -> None:
        """``n`` more units done (imported, kept, skipped or damaged)."""

    def damaged(self, message: str) -> None:
        """A damaged chunk was skipped; ``message`` names it."""


@dataclass
class ImportReport:
    """What an import did."""

    world_id: uuid.UUID
    world_name: str
    source: str
    created: bool
    min_y: int
    height: int
    imported: int = 0
    kept: int = 0
    """Chunks already imported by an earlier run, left as they are (no ``replace``)."""
    not_full: int = 0
    """Anvil chunks whose ``Status`` is not ``minecraft:full``."""
    not_generated: int = 0
    """Luanti MapBlocks marked not generated."""
    damaged: int = 0
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0


def existing_chunks(db: Database, world_id: uuid.UUID) -> set[tuple[int, int]]:
    """The chunks an earlier import of ``world_id`` finished (their metadata is set)."""
    query = select(_wc.c.chunk_x, _wc.c.chunk_z).where(
        _wc.c.world_id == world_id, _wc.c.chunk_metadata.is_not(None)
    )
    with db.engine.connect() as conn:
        return {(x, z) for x, z in conn.execute(query)}


class _Ids:
    """State key -> the world's id, interning new keys a batch at a time."""

    def __init__(self, db: Database, world_id: uuid.UUID) -> None:
        self.db, self.world_id = db, world_id
        self.ids: dict[str, int] = {AIR_KEY: 0}
        self.top = 0

    def intern(self, keys: Iterable[str]) -> None:
        new = [k for k in dict.fromkeys(keys) if k not in self.ids]
        if not new:
            return
        with self.db.engine.connect() as conn:
            if self.db.backend == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                found = intern_states(conn, self.world_id, [json.loads(k) for k in new])
        self.ids.update(zip(new, found, strict=True))
        self.top = max(self.top, *found)

    def lut(self, palette: list[str]) -> npt.NDArray[np.uint32]:
        return np.array([self.ids[k] for k in palette], dtype=np.uint32)


def write_columns(
    db: Database,
    store: ChunkStore,
    columns: Iterator[Column],
    report: ImportReport,
    progress: ImportProgress | None,
    *,
    batch_size: int = 64,
    advance_per_column: bool = True,
) -> None:
    """Write ``columns`` into ``store``'s world, ``batch_size`` per transaction.

    A batch is written by a thread of its own while the next one is gathered (and, without
    a pool, parsed): the writes wait on the database for much of their time (PostgreSQL's
    COPY and commits, SQLite's commits), which parsing fills. One batch is written at a
    time, in order, and every write has finished (or failed) when this returns.
    """
    ids = _Ids(db, store.world_id)
    batch: list[Column] = []
    with ThreadPoolExecutor(1, thread_name_prefix="voxeldb-import-write") as writer:
        writing: deque[Future[int]] = deque()

        def flush() -> None:
            good = _in_range(store, batch, report, progress)
            if good:
                # The writer thread runs the batches in order; the second one waiting
                # bounds the memory, and lets this thread keep the parsers fed meanwhile.
                writing.append(writer.submit(_write_batch, ids, store, good))
            while len(writing) > WRITES_QUEUED:
                report.imported += writing.popleft().result()

        try:
            for column in columns:
                if column.damaged is not None:
                    _damaged(report, progress, column.damaged)
                elif column.skipped is not None:
                    if column.skipped == "not_full":
                        report.not_full += 1
                    report.not_generated += column.not_generated
                else:
                    report.not_generated += column.not_generated
                    batch.append(column)
                if len(batch) >= batch_size:
                    flush()
                    batch = []
                if progress is not None and advance_per_column:
                    progress.advanced(1)
            if batch:
                flush()
        finally:
            # Also when parsing stopped (Ctrl-C, an error): the batches handed to the
            # writer are committed (or failed) before the caller goes on.
            while writing:
                report.imported += writing.popleft().result()


def _damaged(report: ImportReport, progress: ImportProgress | None, message: str) -> None:
    report.damaged += 1
    if len(report.messages) < MAX_MESSAGES:
        report.messages.append(message)
    log.warning("skipped damaged %s", message)
    if progress is not None:
        progress.damaged(message)


def _in_range(
    store: ChunkStore, batch: list[Column], report: ImportReport, progress: ImportProgress | None
) -> list[Column]:
    """The columns of ``batch`` that fit the world; the others are named damaged."""
    good = []
    for column in batch:
        bad = _outside(column, store.min_y, store.height)
        if bad is None:
            good.append(column)
        else:
            _damaged(report, progress, bad)
    return good


def _write_batch(ids: _Ids, store: ChunkStore, batch: list[Column]) -> int:
    """Intern the batch's new states, ``put_many`` it, then set its metadata (on the writer
    thread: interning here also keeps it out of SQLite's lock while a batch is written)."""
    ids.intern(k for column in batch for k in column.palette)
    dtype = np.uint16 if ids.top <= np.iinfo(np.uint16).max else np.uint32
    min_y = store.min_y
    # put_many encodes each item before taking the next, so one array serves them all.
    blocks = np.empty((store.height, 16, 16), dtype=dtype)

    def items() -> Iterator[tuple[int, int, Any]]:
        for column in batch:
            _place(blocks, column, ids.lut(column.palette).astype(dtype), min_y)
            yield column.cx, column.cz, blocks

    store.put_many(items())
    metadata = [{"w": store.world_id, "x": c.cx, "z": c.cz, "m": c.metadata} for c in batch]
    with store.engine.begin() as conn:
        conn.execute(_SET_METADATA, metadata)
    return len(batch)


def _outside(column: Column, min_y: int, height: int) -> str | None:
    for section_y in column.ys:
        y0 = section_y * 16 - min_y
        if y0 < 0 or y0 + 16 > height:
            return (
                f"chunk ({column.cx}, {column.cz}): blocks at y {section_y * 16} to "
                f"{section_y * 16 + 15} are outside the world (y {min_y} to "
                f"{min_y + height - 1})"
            )
    return None


def _place(blocks: npt.NDArray[Any], column: Column, lut: npt.NDArray[Any], min_y: int) -> None:
    """``blocks`` = the column in the world's ids: one lookup for all its sections."""
    ys, indices = column.ys, column.blocks
    if indices is None:
        blocks.fill(0)
        return
    first = ys[0] * 16 - min_y
    if ys == list(range(ys[0], ys[0] + len(ys))):  # the usual case: one run of sections
        blocks[:first] = 0
        blocks[first + 16 * len(ys) :] = 0
        run = blocks[first : first + 16 * len(ys)].reshape(indices.shape)
        np.take(lut, indices, out=run)
        return
    blocks.fill(0)
    for section_y, section in zip(ys, indices, strict=True):
        y0 = section_y * 16 - min_y
        blocks[y0 : y0 + 16] = lut[section]
