"""``voxeldb map`` on a SQLite database without the store: the file read with ``sqlite3``.

A map of an imported world should cost about what ``minetestmapper`` costs, and most of what
the command spent was importing the ORM, SQLAlchemy, Redis and pydantic (about 0.9 s) to read
a few hundred kilobytes of chunk summaries. This source reads the three tables it needs
(``worlds``, ``block_states``, ``world_chunks``) through a read-only ``sqlite3`` connection
and decodes summaries with the kernel's ``voxeldb._summary``. Only chunks whose summary is
missing or stale make it open the store (``voxeldb.connect``), to decode those chunks.

Used when the URL is a plain SQLite file that exists, and no summaries are to be rebuilt;
anything else (PostgreSQL, ``.env`` files, URL options, a world it cannot find) goes
through :func:`voxeldb.ops.render_map`, which also gives the error messages.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxeldb._summary import Summaries, open_summary, summaries_from_bodies

if TYPE_CHECKING:
    from voxeldb import Database


@dataclass(frozen=True)
class MapWorld:
    """What a map needs of a world (``voxeldb.services.WorldRef`` has the same fields)."""

    id: uuid.UUID
    name: str
    settings: dict[str, Any]


__all__ = ["MapWorld", "SQLiteMapSource", "open_sqlite_map", "sqlite_file"]

_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def sqlite_file(url: str | None) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL that exists, else None."""
    if not url:
        return None
    prefix = next((p for p in _PREFIXES if url.startswith(p)), None)
    if prefix is None or "?" in url:
        return None
    path = urllib.parse.unquote(url[len(prefix) :])
    if not path or path == ":memory:":
        return None
    target = Path(path)
    return target if target.is_file() else None


class SQLiteMapSource:
    """:class:`voxeldb.ops._map.MapSource` over a SQLite file, read-only."""

    def __init__(self, conn: sqlite3.Connection, url: str, world: MapWorld) -> None:
        self._conn = conn
        self._url = url
        self.world = world
        self._world = world
        self._wid = world.id.hex
        self._db: Database | None = None

    def close(self) -> None:
        self._conn.close()
        if self._db is not None:
            self._db.close()

    def registry(self) -> dict[int, dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT state_id, state_key FROM block_states WHERE world_id = ?", (self._wid,)
        )
        registry = {int(i): json.loads(key) for i, key in rows}
        registry[0] = {"type": "air"}
        return registry

    def bounds(self) -> tuple[int, int, int, int] | None:
        row = self._conn.execute(
            "SELECT min(chunk_x), min(chunk_z), max(chunk_x), max(chunk_z) FROM world_chunks "
            "WHERE world_id = ?",
            (self._wid,),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def summaries(
        self, rect: tuple[int, int, int, int], rebuild: bool
    ) -> tuple[list[tuple[int, int]], Summaries, int, int]:
        x0, z0, x1, z1 = rect
        rows = self._conn.execute(
            "SELECT chunk_x, chunk_z, version, summary FROM world_chunks WHERE world_id = ? "
            "AND chunk_x BETWEEN ? AND ? AND chunk_z BETWEEN ? AND ?",
            (self._wid, x0, x1, z0, z1),
        ).fetchall()
        keys: list[tuple[int, int]] = []
        bodies: list[bytes] = []
        stale: list[tuple[int, int]] = []
        for cx, cz, version, stored in rows:
            body = open_summary(stored, version)
            if body is None:
                stale.append((cx, cz))
            else:
                keys.append((cx, cz))
                bodies.append(body)
        summaries = summaries_from_bodies(bodies)
        if not stale:
            return keys, summaries, 0, 0
        # Chunks without a current summary: the store decodes them (imported only now).
        store = self._store()
        xs, zs = [k[0] for k in stale], [k[1] for k in stale]
        read = store.summaries(min(xs), min(zs), max(xs), max(zs), rebuild=rebuild)
        wanted = set(stale)
        extra = [i for i, key in enumerate(read.keys) if key in wanted]
        merged = Summaries(
            *(
                _concat(getattr(summaries, name), getattr(read.summaries, name)[extra])
                for name in ("top_id", "top_y", "under_id", "under_y")
            )
        )
        return keys + [read.keys[i] for i in extra], merged, len(extra), read.rebuilt

    def _store(self) -> Any:
        if self._db is None:
            import voxeldb

            self._db = voxeldb.connect(self._url, cache="memory")
        return self._db.chunks(self._world.id)


def _concat(a: Any, b: Any) -> Any:
    import numpy as np

    return np.concatenate([a, b]) if len(b) else a


def open_sqlite_map(url: str | None, ref: str) -> SQLiteMapSource | None:
    """A source for world ``ref`` (name or id) of the SQLite file ``url``, or None when this
    path does not apply (not a plain SQLite file, no such world, no voxeldb schema)."""
    path = sqlite_file(url)
    if path is None or url is None:
        return None
    uri = f"file:{urllib.parse.quote(os.fspath(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        row = None
        text = ref.strip()
        try:
            world_id = uuid.UUID(text)
        except ValueError:
            pass
        else:
            row = conn.execute(
                "SELECT id, name, world_settings FROM worlds WHERE id = ?", (world_id.hex,)
            ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT id, name, world_settings FROM worlds WHERE name = ? LIMIT 1", (text,)
            ).fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if row is None:
        conn.close()
        return None
    settings = json.loads(row[2]) if isinstance(row[2], str) else dict(row[2] or {})
    world = MapWorld(uuid.UUID(row[0]), row[1], settings)
    return SQLiteMapSource(conn, url, world)
