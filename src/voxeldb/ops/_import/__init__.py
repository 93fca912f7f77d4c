"""``voxeldb import``: Minecraft Java (Anvil) and Luanti worlds into a voxeldb world.

================  ===========================================================================
module            part
================  ===========================================================================
``_anvil``        region files, chunk decompression, the chunk's tags; the parsers' task
``_nbt``          the NBT tags the importer keeps (block entities by ``nbtlib``)
``_blockstates``  a chunk's packed block states, all sections at once, into a column palette
``_luanti``       ``world.mt``, the map backends (``map.sqlite``, PostgreSQL), MapBlocks
``_parsed``       the parsed column both hand the writer; the process pool
``_write``        interning, ``put_many`` in batches on a writer thread, chunk metadata
================  ===========================================================================

CONTRACT §8 fixes the names and the mapping; docs/importing.md says what is kept and dropped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.ops._import._parsed import Column, parallel_map, worker_count
from voxeldb.ops._import._write import (
    ImportProgress,
    ImportReport,
    existing_chunks,
    write_columns,
)
from voxeldb.services import WorldRef, resolve_world

if TYPE_CHECKING:
    from voxeldb import Database

__all__ = ["SOURCES", "ImportProgress", "ImportReport", "import_world", "run_import"]

SOURCES = {"anvil": "-z", "luanti": "+z"}
"""Each source and the direction of north in its worlds (``"north"`` in the settings)."""

ANVIL_BATCH = 64
"""Chunks per task handed to a parser process (read there from the region file). About a
fifth of a world's chunks are full: enough tasks in flight to fill a write batch of 64
keep the parsers busy while the parent writes."""
LUANTI_BATCH = 32
"""Columns per task handed to a parser process."""
POOL_MIN_UNITS = 256
"""Fewer chunks than this are parsed in-process: starting the pool would cost more."""


def import_world(
    db: Database,
    source: str,
    path: str | Path,
    name: str,
    *,
    replace: bool = False,
    progress: ImportProgress | None = None,
) -> uuid.UUID:
    """Import the world in directory ``path`` (``source`` ``"anvil"`` or ``"luanti"``) into
    the voxeldb world ``name`` (created if needed); its id. See :func:`run_import`."""
    return run_import(db, source, path, name, replace=replace, progress=progress).world_id


def run_import(
    db: Database,
    source: str,
    path: str | Path,
    name: str,
    *,
    replace: bool = False,
    progress: ImportProgress | None = None,
    workers: int | None = None,
) -> ImportReport:
    """:func:`import_world`, returning what it did.

    Chunks an earlier import of the same world finished are kept unless ``replace``.
    Damaged chunks are skipped and named (``progress.damaged`` and the report); nothing
    about one bad chunk stops the import. ``workers`` parser processes (default: one per
    CPU, in-process for small worlds).
    """
    if source not in SOURCES:
        raise ValidationError(
            f"source must be one of {sorted(SOURCES)}, got {source!r}", field="source"
        )
    world_dir = Path(path)
    if not world_dir.is_dir():
        raise FileNotFoundError(2, "no such world directory", str(world_dir))
    started = time.perf_counter()
    if source == "anvil":
        report = _import_anvil(db, world_dir, name, replace, progress, workers)
    else:
        report = _import_luanti(db, world_dir, name, replace, progress, workers)
    report.seconds = time.perf_counter() - started
    return report


def _world(db: Database, name: str, source: str, min_y: int, height: int) -> tuple[WorldRef, bool]:
    try:
        world = resolve_world(db, name)
    except NotFoundError:
        settings: dict[str, Any] = {
            "height": height,
            "min_y": min_y,
            "source": source,
            "north": SOURCES[source],
        }
        return resolve_world(db, db.create_world(name, settings)), True
    if world.settings.get("source") != source:
        raise ValidationError(
            f"world {world.name!r} exists and was not imported from {source}: choose another "
            "--world name",
            field="name",
        )
    return world, False


def _report(world: WorldRef, created: bool, source: str) -> ImportReport:
    return ImportReport(world.id, world.name, source, created, world.min_y, world.height)


# --- Anvil -------------------------------------------------------------------------------------


def _import_anvil(
    db: Database,
    world_dir: Path,
    name: str,
    replace: bool,
    progress: ImportProgress | None,
    workers: int | None,
) -> ImportReport:
    from voxeldb.ops._import import _anvil

    files = _anvil.region_files(world_dir)
    if not files:
        raise ValidationError(
            f"no region files (r.X.Z.mca) in {world_dir / 'region'}", field="path"
        )
    plan = [(path, _anvil.region_slots(path, rx, rz)) for path, rx, rz in files]
    total = sum(len(slots) for _path, slots in plan)
    min_y, height = _anvil_shape(plan)
    world, created = _world(db, name, "anvil", min_y, height)
    report = _report(world, created, "anvil")
    done = set() if replace or created else existing_chunks(db, world.id)
    if progress is not None:
        progress.started(total, "chunks")

    def tasks() -> Iterator[tuple[str, list[tuple[int, int, int, int]]]]:
        for path, slots in plan:
            todo = [s for s in slots if (s[0], s[1]) not in done]
            kept = len(slots) - len(todo)
            if kept:
                report.kept += kept
                if progress is not None:
                    progress.advanced(kept)
            for i in range(0, len(todo), ANVIL_BATCH):
                yield str(path), todo[i : i + ANVIL_BATCH]

    n = worker_count(workers) if total >= POOL_MIN_UNITS or workers else 1
    columns = _flatten(parallel_map(_anvil.parse_region_task, tasks(), n))
    write_columns(db, db.chunks(world.id), columns, report, progress)
    return report


def _anvil_shape(plan: list[tuple[Path, list[tuple[int, int, int, int]]]]) -> tuple[int, int]:
    """``(min_y, height)`` from the first full chunk (its ``yPos`` and its top section)."""
    from voxeldb.ops._import import _anvil

    old: int | None = None
    for path, slots in plan:
        for slot in _anvil.read_slots(path, slots):
            try:
                payload = slot.payload
                if payload is None:
                    payload = Path(str(slot.external)).read_bytes()
                raw = _anvil.decompress(slot.compression, payload)
                shape = _anvil.chunk_shape(raw)
            except _anvil.OldChunkError as exc:
                old = exc.data_version
                continue
            except Exception:
                continue  # damaged: the import names it
            if shape is not None:
                return shape
    if old is not None:
        raise ValidationError(
            f"this world was saved by Minecraft before 1.18 (DataVersion {old}): only 1.18 "
            "and newer chunks can be imported; open the world in 1.18 or newer first",
            field="path",
        )
    return -64, 384


# --- Luanti ------------------------------------------------------------------------------------


def _import_luanti(
    db: Database,
    world_dir: Path,
    name: str,
    replace: bool,
    progress: ImportProgress | None,
    workers: int | None,
) -> ImportReport:
    from voxeldb.ops._import import _luanti

    source = _luanti.open_map(world_dir)
    try:
        layout = source.columns()
        if not layout:
            raise ValidationError(f"the map {source.name} holds no MapBlocks", field="path")
        low = min(min(ys) for ys in layout.values())
        high = max(max(ys) for ys in layout.values())
        min_y, height = low * 16, (high - low + 1) * 16
        world, created = _world(db, name, "luanti", min_y, height)
        report = _report(world, created, "luanti")
        done = set() if replace or created else existing_chunks(db, world.id)
        order = sorted(layout, key=lambda k: (k[1], k[0]))
        todo = [(x, z, sorted(layout[(x, z)])) for x, z in order if (x, z) not in done]
        report.kept = len(order) - len(todo)
        if progress is not None:
            progress.started(len(order), "columns")
            if report.kept:
                progress.advanced(report.kept)
        blocks = sum(len(ys) for _x, _z, ys in todo)
        n = worker_count(workers) if blocks >= POOL_MIN_UNITS or workers else 1
        tasks = _luanti.iter_tasks(source, todo, LUANTI_BATCH)
        columns = _flatten(parallel_map(_luanti.parse_columns, tasks, n))
        write_columns(db, db.chunks(world.id), columns, report, progress)
    finally:
        source.close()
    return report


def _flatten(batches: Iterator[list[Column]]) -> Iterator[Column]:
    for batch in batches:
        yield from batch
