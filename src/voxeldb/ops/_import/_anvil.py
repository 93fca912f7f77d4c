"""Minecraft Java (Anvil) worlds: region files in, parsed chunk columns out.

A region file ``r.X.Z.mca`` starts with 1,024 four-byte locations (a three-byte offset in
4 KiB sectors and a sector count), then 1,024 timestamps. At a chunk's offset: its length
(four bytes, big-endian, counting the compression byte), the compression type (1 gzip, 2
zlib, 3 none, 4 LZ4 as lz4-java's ``LZ4BlockOutputStream`` writes it; +128 means the data
is in an external ``c.X.Z.mcc`` file beside the region file) and the compressed NBT.

The parent reads each region file's header and hands where batches of its chunks are to
:func:`parse_region_task`, which runs in worker processes: read and decompress them, read
the NBT tags the import needs (``_nbt``; block entities with ``nbtlib``), unpack the
``block_states`` of all sections of a chunk at once (``_blockstates``).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.block

from voxeldb.ops._import._blockstates import AIR_NAMES, chunk_sections, section_indices
from voxeldb.ops._import._nbt import parse_block_entities, read_chunk
from voxeldb.ops._import._parsed import Column, plain_json

__all__ = [
    "AIR_NAMES",
    "OldChunkError",
    "Slot",
    "chunk_shape",
    "decompress",
    "may_be_full",
    "parse_batch",
    "parse_chunk_nbt",
    "parse_region_task",
    "region_files",
    "region_slots",
    "section_indices",
]

SECTOR = 4096
_REGION_NAME = re.compile(r"^r\.(-?\d+)\.(-?\d+)\.mca$")
_FULL = ("minecraft:full", "full")
_STATUS = b"\x08\x00\x06Status"
_FULL_VALUES = tuple(struct.pack(">H", len(s)) + s.encode() for s in _FULL)
_LZ4_MAGIC = b"LZ4Block"
_LZ4_HEADER = struct.Struct("<Biii")  # token, compressed length, length, checksum


@dataclass(frozen=True)
class Slot:
    """One chunk of a region file, still compressed (or where its external file is)."""

    region: str
    cx: int
    cz: int
    compression: int
    payload: bytes | None
    external: str | None = None
    problem: str | None = None

    @property
    def name(self) -> str:
        return f"chunk ({self.cx}, {self.cz}) in {self.region}"


def region_files(world: Path) -> list[tuple[Path, int, int]]:
    """``(path, rx, rz)`` of every ``region/r.X.Z.mca`` of ``world``, in (rz, rx) order."""
    region = world / "region"
    if not region.is_dir():
        raise FileNotFoundError(2, "no region directory (is this a Minecraft world?)", str(region))
    found = []
    for path in region.iterdir():
        match = _REGION_NAME.match(path.name)
        if match and path.is_file():
            found.append((path, int(match[1]), int(match[2])))
    return sorted(found, key=lambda f: (f[2], f[1]))


def region_slots(path: Path, rx: int, rz: int) -> list[tuple[int, int, int, int]]:
    """``(cx, cz, offset, sectors)`` of the chunks a region file's header lists."""
    with path.open("rb") as f:
        header = f.read(SECTOR)
    if len(header) < SECTOR:
        return []
    slots = []
    for i in range(1024):
        entry = int.from_bytes(header[4 * i : 4 * i + 4], "big")
        offset, sectors = entry >> 8, entry & 0xFF
        if offset:
            slots.append((rx * 32 + (i & 31), rz * 32 + (i >> 5), offset, sectors))
    return slots


def read_slots(path: Path, slots: list[tuple[int, int, int, int]]) -> Iterator[Slot]:
    """The compressed chunks of ``slots`` (from :func:`region_slots`), read from ``path``."""
    region = path.name
    with path.open("rb") as f:
        size = f.seek(0, 2)
        for cx, cz, offset, _sectors in slots:
            start = offset * SECTOR
            if offset < 2 or start + 5 > size:
                yield Slot(region, cx, cz, 0, None, problem=f"offset {offset} is outside the file")
                continue
            f.seek(start)
            head = f.read(5)
            length, compression = int.from_bytes(head[:4], "big"), head[4]
            if compression & 128:
                external = path.parent / f"c.{cx}.{cz}.mcc"
                yield Slot(region, cx, cz, compression & 127, None, external=str(external))
                continue
            if length < 1 or start + 4 + length > size:
                yield Slot(region, cx, cz, compression, None, problem=f"length {length} is wrong")
                continue
            yield Slot(region, cx, cz, compression, f.read(length - 1))


def _lz4_java(data: bytes) -> bytes:
    """lz4-java's block stream: ``LZ4Block``, token, lengths and checksum, then the block."""
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 8] != _LZ4_MAGIC:
            raise ValueError("LZ4 stream without its LZ4Block header")
        token, compressed, length, _checksum = _LZ4_HEADER.unpack_from(data, pos + 8)
        pos += 8 + _LZ4_HEADER.size
        if length == 0:
            break
        block = data[pos : pos + compressed]
        pos += compressed
        if len(block) != compressed:
            raise ValueError("LZ4 block is cut short")
        method = token & 0xF0
        if method == 0x10:
            parts.append(block)
        elif method == 0x20:
            parts.append(lz4.block.decompress(block, uncompressed_size=length))
        else:
            raise ValueError(f"LZ4 block method {method:#x} is unknown")
    return b"".join(parts)


def decompress(compression: int, payload: bytes) -> bytes:
    """A chunk's NBT bytes from its region-file compression type and payload."""
    if compression == 2:
        return zlib.decompress(payload)
    if compression == 1:
        return gzip.decompress(payload)
    if compression == 3:
        return payload
    if compression == 4:
        return _lz4_java(payload)
    raise ValueError(f"compression type {compression} is not supported")


def parse_chunk_nbt(cx: int, cz: int, raw: bytes) -> Column:
    """A column from a chunk's decompressed NBT (``skipped`` when not fully generated)."""
    if not may_be_full(raw):
        return Column(cx, cz, skipped="not_full")
    root = read_chunk(raw)
    if root.old:
        raise ValueError(
            f"written by Minecraft before 1.18 (DataVersion {root.data_version or 0}): "
            "open the world in 1.18 or newer to upgrade it"
        )
    if root.status not in _FULL:
        return Column(cx, cz, skipped="not_full")
    if root.sections is None:
        raise ValueError("it has no sections")
    if root.x is None or root.z is None:
        raise ValueError("it has no xPos or zPos")
    if (root.x, root.z) != (cx, cz):
        raise ValueError(f"its data says it is chunk ({root.x}, {root.z})")
    column = Column(cx, cz)
    column.palette, column.ys, column.blocks = chunk_sections(root.sections)
    metadata: dict[str, Any] = {"source": "anvil"}
    if root.block_entities is not None:
        metadata["block_entities"] = plain_json(parse_block_entities(root.block_entities))
    column.metadata = metadata
    return column


def may_be_full(raw: bytes) -> bool:
    """Whether a string tag ``Status`` of a full chunk is in ``raw``: one scan of the bytes
    (most chunks of a world are not full, and are never parsed)."""
    at = raw.find(_STATUS)
    while at >= 0:
        if raw.startswith(_FULL_VALUES, at + len(_STATUS)):
            return True
        at = raw.find(_STATUS, at + 1)
    return False


def _parse_slot(slot: Slot) -> Column:
    try:
        if slot.problem is not None:
            raise ValueError(slot.problem)
        payload = slot.payload
        if slot.external is not None:
            payload = Path(slot.external).read_bytes()
        assert payload is not None
        return parse_chunk_nbt(slot.cx, slot.cz, decompress(slot.compression, payload))
    except Exception as exc:  # a damaged chunk of any kind: skipped with its name
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return Column(slot.cx, slot.cz, damaged=f"{slot.name}: {reason}")


def parse_batch(slots: list[Slot]) -> list[Column]:
    """Parse a batch of chunks; never raises for bad data."""
    return [_parse_slot(slot) for slot in slots]


def parse_region_task(task: tuple[str, list[tuple[int, int, int, int]]]) -> list[Column]:
    """Read and parse some chunks of one region file (runs in a worker process: the
    parent sends where the chunks are, not their bytes)."""
    path, slots = task
    return [_parse_slot(slot) for slot in read_slots(Path(path), slots)]


class OldChunkError(ValueError):
    """A chunk from before Minecraft 1.18 (its data under ``Level``)."""

    def __init__(self, data_version: int) -> None:
        super().__init__(f"DataVersion {data_version}")
        self.data_version = data_version


def chunk_shape(raw: bytes) -> tuple[int, int] | None:
    """``(min_y, height)`` a full chunk's NBT implies, or None for a chunk not full."""
    if not may_be_full(raw):
        return None
    root = read_chunk(raw)
    if root.old:
        raise OldChunkError(root.data_version or 0)
    if root.status not in _FULL or root.sections is None:
        return None
    min_y = (root.y if root.y is not None else -4) * 16
    tops = [s.y for s in root.sections if s.has_states and s.y is not None]
    top = max(tops, default=min_y // 16 + 23)
    return min_y, max(16, (top + 1) * 16 - min_y)
