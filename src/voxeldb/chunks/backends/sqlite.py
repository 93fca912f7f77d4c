"""SQLite backend: the embedded default, no server needed.

Statements go through the raw ``sqlite3`` connection underneath the SQLAlchemy
``Connection`` (same transaction), skipping per-row SQLAlchemy work on the hot paths. Write
transactions start with ``BEGIN IMMEDIATE`` (``_engine.py``): the write lock is taken before
the read of a read-modify-write, so writers are serialized and no edit is lost.

Versions: every row written (inserted or updated) gets a fresh random version
(``voxeldb._ids.fresh_version``), so no version repeats after a delete, a restored backup
or a clock that stepped back (docs/storage.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from voxeldb._engine import sqlite_reads
from voxeldb._ids import fresh_version, fresh_versions
from voxeldb._summary import seal_summary
from voxeldb.chunks._geometry import Key, Rect, Row, VersionRow
from voxeldb.chunks._schema import CHUNK_KEY_COLUMNS, CHUNK_WRITE_COLUMNS, world_chunks_table
from voxeldb.chunks.backends._base import Backend, EditRow, Known, NewRow, ReadRow
from voxeldb.errors import DriverErrorKind

__all__ = ["SQLiteBackend"]

# Table and column names come from the schema (voxeldb.chunks._schema).
_T = world_chunks_table.name
_WRITE = ", ".join(CHUNK_WRITE_COLUMNS)
_PK = ", ".join(CHUNK_KEY_COLUMNS)

_KEYS_PER_STATEMENT = 400
"""Keys per ``IN (VALUES ...)`` list: 800 parameters, well under SQLite's limit."""

_UPSERT = (
    f"INSERT INTO {_T} ({_WRITE}) VALUES (?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({_PK}) DO UPDATE SET data = excluded.data, "
    "version = excluded.version, summary = excluded.summary, updated_at = CURRENT_TIMESTAMP"
)
_INSERT_NEW = (
    f"INSERT INTO {_T} ({_WRITE}) VALUES (?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({_PK}) DO NOTHING RETURNING version"
)
_UPDATE = (
    f"UPDATE {_T} SET data = ?, version = ?, summary = ?, updated_at = CURRENT_TIMESTAMP "
    "WHERE world_id = ? AND chunk_x = ? AND chunk_z = ? RETURNING version"
)


def _raw(conn: Connection | sqlite3.Connection) -> sqlite3.Connection:
    if isinstance(conn, sqlite3.Connection):
        return conn  # a read handle (Backend.read)
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


class SQLiteBackend(Backend):
    """:class:`Backend` on SQLite (the stdlib ``sqlite3`` driver)."""

    name = "sqlite"

    @property
    def _wid(self) -> str:
        # The Uuid type's storage on SQLite: CHAR(32) of hex digits (docs/schema.md).
        return self.world_id.hex

    def _query(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
        return _raw(conn).execute(sql, params).fetchall()

    def _acquire_read(self, fresh: bool) -> tuple[Any, bool, Any]:
        reads = sqlite_reads(self.engine)
        if reads is None:
            return super()._acquire_read(fresh)
        conn = reads.acquire()
        return conn, False, (reads, conn)

    def _release_read(self, lease: Any) -> None:
        if isinstance(lease, tuple):
            reads, conn = lease
            reads.release(conn)
        else:
            super()._release_read(lease)

    def _rects_sql(self, rects: Sequence[Rect], columns: str) -> tuple[str, list[Any]]:
        # world_id first, then ranges: the primary-key index, within this world's rows only.
        part = (
            f"SELECT {columns} FROM {_T} WHERE world_id = ? "
            "AND chunk_x BETWEEN ? AND ? AND chunk_z BETWEEN ? AND ?"
        )
        params: list[Any] = []
        for x0, z0, x1, z1 in rects:
            params += [self._wid, x0, x1, z0, z1]
        return " UNION ALL ".join([part] * len(rects)), params

    def versions(self, conn: Any, rects: Sequence[Rect]) -> list[VersionRow]:
        rects = [r for r in rects if r[0] <= r[2] and r[1] <= r[3]]
        if not rects:
            return []
        sql, params = self._rects_sql(rects, "chunk_x, chunk_z, version")
        return self._query(conn, sql + " ORDER BY 1, 2", params)

    def _keys_sql(self, columns: str, n: int) -> str:
        values = ",".join(["(?, ?)"] * n)
        return (
            f"SELECT {columns} FROM {_T} WHERE world_id = ? "
            f"AND (chunk_x, chunk_z) IN (VALUES {values})"
        )

    def _by_keys(self, conn: Any, keys: Sequence[Key], columns: str) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(keys), _KEYS_PER_STATEMENT):
            part = keys[start : start + _KEYS_PER_STATEMENT]
            params: list[Any] = [self._wid]
            for x, z in part:
                params += [x, z]
            rows += self._query(conn, self._keys_sql(columns, len(part)), params)
        return rows

    def data(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        return self._by_keys(conn, keys, "chunk_x, chunk_z, version, data")

    def lock_for_edit(self, conn: Connection, keys: Sequence[Key], known: Known) -> list[EditRow]:
        # BEGIN IMMEDIATE already holds the database's write lock; a local read costs
        # little, so the data of known rows is read and dropped.
        rows = self._by_keys(conn, keys, "chunk_x, chunk_z, version, data, summary")
        return sorted((x, z, v, None if known.get((x, z)) == v else d, s) for x, z, v, d, s in rows)

    def rows(
        self, handle: Any, rects: Sequence[Rect] | None, keys: Sequence[Key], known: Known
    ) -> list[ReadRow]:
        if rects is not None:
            rects = [r for r in rects if r[0] <= r[2] and r[1] <= r[3]]
            if not rects:
                return []
        if rects is None and len(keys) == 1:
            ((x, z),) = keys
            found = self._query(
                handle,
                f"SELECT version, data FROM {_T} WHERE world_id = ? AND chunk_x = ? AND chunk_z = ?",
                (self._wid, x, z),
            )
            # The blob of a held version is read too: in-process, that costs less than asking.
            return [(x, z, v, None if known.get((x, z)) == v else d) for v, d in found]
        if not known:
            if rects is None:
                return self._by_keys(handle, keys, "chunk_x, chunk_z, version, data")
            sql, params = self._rects_sql(rects, "chunk_x, chunk_z, version, data")
            return self._query(handle, sql, params)
        # In-process, a second statement costs no round trip: versions first, then only the
        # blobs the reader does not hold (a write in between is read at its newer version).
        if rects is None:
            current = self._by_keys(handle, keys, "chunk_x, chunk_z, version")
        else:
            current = self.versions(handle, rects)
        held: list[ReadRow] = [(x, z, v, None) for x, z, v in current if known.get((x, z)) == v]
        missing = [(x, z) for x, z, v in current if known.get((x, z)) != v]
        return held + self._by_keys(handle, missing, "chunk_x, chunk_z, version, data")

    def connect_for_write(self) -> Connection:
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    def upsert(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        raw = _raw(conn)
        written: dict[Key, int] = {}
        for x, z, data, summary in rows:
            version = fresh_version()
            sealed = seal_summary(summary, version)
            cur = raw.execute(
                _UPSERT + " RETURNING version", (self._wid, x, z, data, version, sealed)
            )
            written[(x, z)] = int(cur.fetchone()[0])
            cur.close()
        return written

    def bulk_upsert(
        self, conn: Connection, rows: Sequence[NewRow]
    ) -> dict[Key, tuple[int, bytes | None]]:
        wid = self._wid
        versions = fresh_versions(len(rows))
        # The bytes of the rows replaced: the journal keeps them (undo of the put).
        existing = {
            (x, z): bytes(d)
            for x, z, d in self._by_keys(
                conn, [(r[0], r[1]) for r in rows], "chunk_x, chunk_z, data"
            )
        }
        _raw(conn).executemany(
            _UPSERT,
            [
                (wid, x, z, data, v, seal_summary(summary, v))
                for (x, z, data, summary), v in zip(rows, versions, strict=True)
            ],
        )
        return {
            (r[0], r[1]): (v, existing.get((r[0], r[1])))
            for r, v in zip(rows, versions, strict=True)
        }

    def lock(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        return self.data(conn, keys)

    def insert_new(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        raw = _raw(conn)
        inserted: dict[Key, int] = {}
        for x, z, data, summary in rows:
            version = fresh_version()
            sealed = seal_summary(summary, version)
            cur = raw.execute(_INSERT_NEW, (self._wid, x, z, data, version, sealed))
            row = cur.fetchone()
            cur.close()
            if row is not None:
                inserted[(x, z)] = int(row[0])
        return inserted

    def update(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        raw = _raw(conn)
        written: dict[Key, int] = {}
        for x, z, data, summary in rows:
            version = fresh_version()
            sealed = seal_summary(summary, version)
            cur = raw.execute(_UPDATE, (data, version, sealed, self._wid, x, z))
            row = cur.fetchone()
            cur.close()
            if row is not None:
                written[(x, z)] = int(row[0])
        return written

    def delete(self, conn: Connection, cx: int, cz: int) -> bytes | None:
        cur = _raw(conn).execute(
            f"DELETE FROM {_T} WHERE world_id = ? AND chunk_x = ? AND chunk_z = ? RETURNING data",
            (self._wid, cx, cz),
        )
        row = cur.fetchone()
        cur.close()
        return None if row is None else bytes(row[0])

    def classify(self, exc: BaseException) -> DriverErrorKind | None:
        if isinstance(exc, DBAPIError):
            exc = exc.orig if exc.orig is not None else exc
        if isinstance(exc, sqlite3.OperationalError):
            message = str(exc).lower()
            if "locked" in message or "busy" in message:
                return "transient"
        if isinstance(exc, sqlite3.IntegrityError) and "foreign key" in str(exc).lower():
            return "foreign_key"
        return None
