"""Luanti (Minetest) worlds: MapBlocks in, parsed chunk columns out.

``world.mt`` names the map backend: ``sqlite3`` (``map.sqlite``, table ``blocks(pos, data)``
with ``pos = z * 2**24 + y * 2**12 + x`` of the MapBlock) or ``postgresql``
(``blocks(posx, posy, posz, data)``, connection from ``pgsql_connection``).

A MapBlock is 16^3 nodes. Serialization versions 25 to 28 (zlib) and 29 (zstd, Luanti 5.5+)
are read: the flags (bit 0x08 is set on a MapBlock *not* generated), the name-id mapping, ``param0`` (content
id), ``param2`` and the node metadata (fields and inventories). ``param1`` (light), static
objects (entities) and node timers are dropped (docs/importing.md).

The parent lists the MapBlocks' positions (no data), groups them into columns (a voxeldb
chunk is every MapBlock of one ``(x, z)``), fetches a batch of columns at a time and hands it
to :func:`parse_columns`, which runs in worker processes.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zstandard

from voxeldb.errors import ValidationError
from voxeldb.ops._import._parsed import AIR_KEY, Column, LocalPalette, state_key

__all__ = [
    "AIR_NAMES",
    "BlockSource",
    "MapBlock",
    "open_map",
    "parse_columns",
    "parse_mapblock",
    "read_world_mt",
]

AIR_NAMES = frozenset({"air", "ignore"})
"""Node names that become voxeldb air (``ignore`` is Luanti's "not loaded", never real)."""

NOT_GENERATED = 0x08
"""The flag bit Luanti sets on a MapBlock that is *not* generated (``mapblock.cpp``)."""
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

ColumnTask = tuple[int, int, list[tuple[int, bytes]]]
"""``(x, z, [(y, data), ...])``: one column's MapBlocks as stored."""


def read_world_mt(world: Path) -> dict[str, str]:
    """The ``key = value`` lines of ``world.mt``."""
    path = world / "world.mt"
    settings: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            settings[key.strip()] = value.strip()
    return settings


def _signed12(value: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    value = value % 4096
    return np.where(value >= 2048, value - 4096, value)


def decode_pos(pos: npt.NDArray[np.int64]) -> tuple[Any, Any, Any]:
    """``(x, y, z)`` arrays from ``map.sqlite``'s packed ``pos`` integers."""
    x = _signed12(pos)
    pos = (pos - x) // 4096
    y = _signed12(pos)
    pos = (pos - y) // 4096
    z = _signed12(pos)
    return x, y, z


def encode_pos(x: int, y: int, z: int) -> int:
    return z * 0x1000000 + y * 0x1000 + x


class BlockSource:
    """A Luanti map: the MapBlocks' positions, and their data a batch of columns at a time."""

    name = ""

    def positions(self) -> tuple[Any, Any, Any]:
        raise NotImplementedError

    def fetch(self, columns: list[tuple[int, int, list[int]]]) -> list[ColumnTask]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def columns(self) -> dict[tuple[int, int], list[int]]:
        """``(x, z) -> [y, ...]`` of every stored MapBlock."""
        import psycopg

        try:
            xs, ys, zs = self.positions()
        except (sqlite3.Error, psycopg.Error) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ValidationError(
                f"cannot read the map {self.name}: {reason}", field="path"
            ) from None
        found: dict[tuple[int, int], list[int]] = defaultdict(list)
        for x, y, z in zip(xs.tolist(), ys.tolist(), zs.tolist(), strict=True):
            found[(x, z)].append(y)
        return found


class _SQLiteSource(BlockSource):
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(2, "no map.sqlite in the world", str(path))
        self.name = str(path)
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def positions(self) -> tuple[Any, Any, Any]:
        rows = self.conn.execute("SELECT pos FROM blocks").fetchall()
        return decode_pos(np.array([r[0] for r in rows], dtype=np.int64))

    def fetch(self, columns: list[tuple[int, int, list[int]]]) -> list[ColumnTask]:
        where = {encode_pos(x, y, z): (x, y, z) for x, z, ys in columns for y in ys}
        data: dict[tuple[int, int], list[tuple[int, bytes]]] = defaultdict(list)
        keys = list(where)
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for pos, blob in self.conn.execute(
                f"SELECT pos, data FROM blocks WHERE pos IN ({marks})", part
            ):
                x, y, z = where[pos]
                data[(x, z)].append((y, bytes(blob)))
        return [(x, z, sorted(data[(x, z)])) for x, z, _ys in columns]

    def close(self) -> None:
        self.conn.close()


class _PostgresSource(BlockSource):
    def __init__(self, conninfo: str) -> None:
        import psycopg

        self.name = "in PostgreSQL (world.mt's pgsql_connection)"
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def positions(self) -> tuple[Any, Any, Any]:
        rows = self.conn.execute("SELECT posx, posy, posz FROM blocks").fetchall()
        array = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return array[:, 0], array[:, 1], array[:, 2]

    def fetch(self, columns: list[tuple[int, int, list[int]]]) -> list[ColumnTask]:
        data: dict[tuple[int, int], list[tuple[int, bytes]]] = defaultdict(list)
        rows = self.conn.execute(
            "SELECT posx, posy, posz, data FROM blocks WHERE (posx, posz) IN "
            "(SELECT * FROM unnest(%s::int[], %s::int[]))",
            ([c[0] for c in columns], [c[1] for c in columns]),
        )
        for x, y, z, blob in rows:
            data[(x, z)].append((y, bytes(blob)))
        return [(x, z, sorted(data[(x, z)])) for x, z, _ys in columns]

    def close(self) -> None:
        self.conn.close()


def open_map(world: Path) -> BlockSource:
    """The map of the Luanti world in directory ``world`` (from its ``world.mt``)."""
    settings = read_world_mt(world)
    backend = settings.get("backend", "sqlite3")
    if backend == "sqlite3":
        return _SQLiteSource(world / "map.sqlite")
    if backend == "postgresql":
        conninfo = settings.get("pgsql_connection")
        if not conninfo:
            raise ValidationError(
                "world.mt says backend = postgresql but has no pgsql_connection", field="path"
            )
        import psycopg

        try:
            return _PostgresSource(conninfo)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ValidationError(
                f"cannot read the world's PostgreSQL map: {reason}", field="path"
            ) from None
    raise ValidationError(
        f"world.mt says backend = {backend}: only sqlite3 and postgresql maps can be imported "
        "(convert with: minetestserver --migrate sqlite3 --world WORLD_DIR)",
        field="path",
    )


# --- one MapBlock -------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("MapBlock data is cut short")
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise ValueError("node metadata inventory is cut short")
        line = self.data[self.pos : end]
        self.pos = end + 1
        return line


def _zlib_part(reader: _Reader) -> bytes:
    inflate = zlib.decompressobj()
    out = inflate.decompress(reader.data[reader.pos :])
    if not inflate.eof:
        raise ValueError("zlib stream is cut short")
    reader.pos = len(reader.data) - len(inflate.unused_data)
    return out


def _name_ids(reader: _Reader) -> dict[int, str]:
    version = reader.u8()
    if version != 0:
        raise ValueError(f"name-id mapping version {version} is unknown")
    names = {}
    for _ in range(reader.u16()):
        content = reader.u16()
        names[content] = reader.take(reader.u16()).decode("utf-8", "replace")
    return names


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _inventory(reader: _Reader) -> dict[str, Any]:
    lists: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    while True:
        line = _text(reader.line()).rstrip("\r")
        word, _, rest = line.partition(" ")
        if word == "EndInventory":
            return lists
        if word == "List":
            name = rest.rsplit(" ", 1)[0]
            current = lists[name] = {"width": 0, "items": []}
        elif current is not None and word == "Width":
            current["width"] = int(rest or 0)
        elif current is not None and word == "Item":
            current["items"].append(rest)
        elif current is not None and word == "Empty":
            current["items"].append("")
        elif word == "EndInventoryList":
            current = None


def _node_metadata(reader: _Reader, bx: int, by: int, bz: int) -> list[dict[str, Any]]:
    version = reader.u8()
    if version == 0:
        return []
    if version > 2:
        raise ValueError(f"node metadata version {version} is unknown")
    nodes = []
    for _ in range(reader.u16()):
        p = reader.u16()
        node: dict[str, Any] = {
            "x": bx * 16 + (p & 15),
            "y": by * 16 + ((p >> 4) & 15),
            "z": bz * 16 + (p >> 8),
        }
        fields: dict[str, str] = {}
        private: list[str] = []
        for _ in range(reader.u32()):
            key = _text(reader.take(reader.u16()))
            fields[key] = _text(reader.take(reader.u32()))
            if version >= 2 and reader.u8():
                private.append(key)
        node["fields"] = fields
        if private:
            node["private"] = private
        inventory = _inventory(reader)
        if inventory:
            node["inventory"] = inventory
        nodes.append(node)
    return nodes


@dataclass
class MapBlock:
    """A MapBlock's nodes: ``content`` (param0) and ``param2`` as ``[y, z, x]`` arrays."""

    generated: bool
    names: dict[int, str]
    content: npt.NDArray[np.uint16]
    param2: npt.NDArray[np.uint8]
    metadata: list[dict[str, Any]]


def _nodes(raw: bytes) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]:
    if len(raw) < 4 * 4096:
        raise ValueError("MapBlock node data is cut short")
    content = np.frombuffer(raw, dtype=">u2", count=4096).astype(np.uint16)
    param2 = np.frombuffer(raw, dtype=np.uint8, count=4096, offset=3 * 4096)
    # Luanti orders nodes z, y, x; voxeldb arrays are [y, z, x].
    return (
        content.reshape(16, 16, 16).transpose(1, 0, 2),
        param2.reshape(16, 16, 16).transpose(1, 0, 2),
    )


def parse_mapblock(data: bytes, bx: int, by: int, bz: int) -> MapBlock:
    """One MapBlock as stored (serialization version 25 to 29)."""
    if not data:
        raise ValueError("MapBlock data is empty")
    version = data[0]
    if version >= 29:
        if version > 29:
            raise ValueError(f"MapBlock serialization version {version} is not supported")
        body = _zstd().decompressobj().decompress(data[1:])
        r = _Reader(body)
        flags = r.u8()
        r.u16()  # lighting_complete
        r.u32()  # timestamp
        names = _name_ids(r)
        if (r.u8(), r.u8()) != (2, 2):
            raise ValueError("MapBlock content/params width is not 2")
        content, param2 = _nodes(r.take(4 * 4096))
        metadata = _node_metadata(r, bx, by, bz)
        # Static objects and node timers follow: dropped.
    elif 25 <= version <= 28:
        r = _Reader(data, 1)
        flags = r.u8()
        if version >= 27:
            r.u16()  # lighting_complete
        if (r.u8(), r.u8()) != (2, 2):
            raise ValueError("MapBlock content/params width is not 2")
        content, param2 = _nodes(_zlib_part(r))
        metadata = _node_metadata(_Reader(_zlib_part(r)), bx, by, bz)
        # Static objects: version, count, then each object's type, position and data.
        r.u8()
        for _ in range(r.u16()):
            r.take(1 + 12)
            r.take(r.u16())
        r.u32()  # timestamp
        names = _name_ids(r)
    else:
        raise ValueError(f"MapBlock serialization version {version} is not supported")
    return MapBlock(not flags & NOT_GENERATED, names, content, param2, metadata)


@functools.cache
def _zstd() -> zstandard.ZstdDecompressor:
    """One decompressor per process: making one per MapBlock cost a tenth of the parse."""
    return zstandard.ZstdDecompressor()


@functools.lru_cache(maxsize=65_536)
def _node_key(name: str, param2: int) -> str:
    if name in AIR_NAMES:
        return AIR_KEY
    return state_key({"type": name} if param2 == 0 else {"type": name, "param2": param2})


def _distinct(pairs: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """``np.unique(pairs, return_inverse=True)`` for small values, five times faster.

    Luanti numbers a MapBlock's content ids from 0 as it writes them, so the pairs
    ``content << 8 | param2`` stay small: a dense table beats sorting.
    """
    flat = pairs.reshape(-1)
    top = int(flat.max())
    if top >= 1 << 20:
        unique, inverse = np.unique(flat, return_inverse=True)
        return unique, inverse.reshape(pairs.shape)
    table = np.zeros(top + 1, dtype=np.intp)
    table[flat] = 1
    unique = np.flatnonzero(table)
    table[unique] = np.arange(len(unique))
    return unique, table[pairs]


def _column(task: ColumnTask) -> Column:
    x, z, blocks = task
    column = Column(x, z)
    palette = LocalPalette()
    nodes: list[dict[str, Any]] = []
    sections: list[tuple[int, Any]] = []
    try:
        for y, data in blocks:
            where = f"MapBlock ({x}, {y}, {z})"
            try:
                block = parse_mapblock(data, x, y, z)
            except Exception as exc:
                raise ValueError(f"{where}: {' '.join(str(exc).split())[:200]}") from None
            if not block.generated:
                column.not_generated += 1
                continue
            unique, inverse = _distinct((block.content.astype(np.intp) << 8) | block.param2)
            local = np.empty(len(unique), dtype=np.uint16)
            for i, pair in enumerate(unique.tolist()):
                name = block.names.get(pair >> 8)
                if name is None:
                    raise ValueError(f"{where}: content id {pair >> 8} has no name")
                local[i] = palette.id_of(_node_key(name, pair & 0xFF))
            indices = local[inverse]
            if indices.any():
                sections.append((y, indices))
            nodes.extend(block.metadata)
    except ValueError as exc:
        return Column(x, z, damaged=f"column ({x}, {z}): {exc}")
    if column.not_generated == len(blocks):
        column.skipped = "not_generated"
        return column
    column.palette = palette.keys
    column.set_sections(sections)
    column.metadata = {"source": "luanti"}
    if nodes:
        column.metadata["nodes"] = nodes
    return column


def parse_columns(tasks: list[ColumnTask]) -> list[Column]:
    """Parse a batch of columns (runs in a worker process); never raises for bad data."""
    out = []
    for task in tasks:
        try:
            out.append(_column(task))
        except Exception as exc:  # anything else a damaged block can cause
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            out.append(Column(task[0], task[1], damaged=f"column ({task[0]}, {task[1]}): {reason}"))
    return out


def iter_tasks(
    source: BlockSource, columns: list[tuple[int, int, list[int]]], batch: int
) -> Iterator[list[ColumnTask]]:
    """The columns' data, ``batch`` columns at a time."""
    import psycopg

    for i in range(0, len(columns), batch):
        try:
            tasks = source.fetch(columns[i : i + batch])
        except (sqlite3.Error, psycopg.Error) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ValidationError(
                f"cannot read the map {source.name}: {reason}", field="path"
            ) from None
        yield tasks
