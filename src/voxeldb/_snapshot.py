"""World snapshots: one portable, self-checking file per world (``DatabaseSetup``, ``voxeldb snapshot``).

A snapshot is a zip archive:

- ``manifest.json``: format name and version, the world's id and name, row counts, the source
  backend and Alembic revision, and the size and SHA-256 of every other member;
- ``tables/<table>.json``: the world's rows of every table that hangs off ``worlds`` by foreign
  keys (the world row, the block-state registry, characters and their inventories and
  relationships, stories and choices, agent activities and evolution log), plus the rows those
  point at outside the world (``users``, ``ai_agents``) as *reference* rows;
- ``chunks.bin``: every chunk exactly as stored (the codec's bytes), never decoded, framed as
  ``b"VXCHUNKS"`` then per chunk ``<iiqII`` (cx, cz, version, len(data), len(metadata JSON)),
  the data and the metadata JSON.

Which tables belong to a world is worked out from the foreign keys of the ORM metadata, so a
new world-owned table is carried without changes here. Password hashes never leave the
database: a user created by a restore gets an unusable hash (the account is locked until its
password is set again); a user that exists on the target already (same id, or the same value
of a unique column such as ``username``) is used as it is.

Restored chunks get a fresh ``version`` (``voxeldb._ids.fresh_version``), not the one in the
file: the world may have been edited after the snapshot and deleted since, and caches may
still hold those later versions (v + 1, v + 2, ...) with other contents. A fresh version is
past all of them, so no cache needs clearing after a restore.

The file is written to a temporary name in the target directory, fsynced and renamed, so a
crash leaves either the complete snapshot or none. A restore checks every member's SHA-256
and runs in one transaction: a corrupt file changes nothing.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import hashlib
import json
import os
import re
import secrets
import struct
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    ForeignKey,
    MetaData,
    Table,
    and_,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from voxeldb._ids import fresh_version
from voxeldb.chunks._store import world_shape
from voxeldb.errors import NotFoundError, SnapshotError
from voxeldb.meta._base import as_utc

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SnapshotInfo",
    "create_world_snapshot",
    "read_manifest",
    "restore_world_snapshot",
]

FORMAT = "voxeldb-world-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS_MEMBER = "chunks.bin"
SUFFIX = ".vxsnap"
_CHUNK_MAGIC = b"VXCHUNKS"
_RECORD = struct.Struct("<iiqII")
_BATCH = 256
_IN_LIST = 500
# Columns that never leave the database. On restore they get the value the factory makes,
# or the database default (None): a restored user is locked and has no login history.
_REDACTED: dict[str, dict[str, Callable[[], Any] | None]] = {
    "users": {
        "password_hash": lambda: _locked_password_hash(),
        "password_changed_at": None,
        "last_login_at": None,
        "auth_epoch": None,
    },
}
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def _locked_password_hash() -> str:
    """A valid bcrypt hash of a random secret nobody knows: the account cannot log in."""
    import bcrypt

    return bcrypt.hashpw(secrets.token_urlsafe(32).encode(), bcrypt.gensalt(rounds=4)).decode()


# --- which rows belong to a world ---------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    owned: list[Table]
    """Tables reachable from ``worlds`` against the foreign keys, parents first (no chunks)."""
    references: list[Table]
    """Tables the owned rows point at that are not the world's own (users, agents), parents first."""
    chunks: Table


def _plan(metadata: MetaData) -> _Plan:
    tables = metadata.tables
    if "worlds" not in tables or "world_chunks" not in tables:
        raise SnapshotError("the ORM metadata has no worlds/world_chunks tables")
    owned_names = {"worlds"}
    changed = True
    while changed:
        changed = False
        for table in metadata.sorted_tables:
            if table.name in owned_names:
                continue
            if any(fk.column.table.name in owned_names for fk in table.foreign_keys):
                owned_names.add(table.name)
                changed = True
    ref_names: set[str] = set()
    frontier = [tables[n] for n in owned_names]
    while frontier:
        table = frontier.pop()
        for fk in table.foreign_keys:
            parent = fk.column.table.name
            if parent not in owned_names and parent not in ref_names:
                ref_names.add(parent)
                frontier.append(tables[parent])
    order = metadata.sorted_tables
    return _Plan(
        owned=[t for t in order if t.name in owned_names and t.name != "world_chunks"],
        references=[t for t in order if t.name in ref_names],
        chunks=tables["world_chunks"],
    )


def _owned_fks(table: Table, owned: set[str]) -> list[ForeignKey]:
    return [
        fk
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)
        if fk.column.table.name in owned and fk.column.table is not table
    ]


def _criterion(
    table: Table, world_id: uuid.UUID, owned: set[str], depth: int = 0
) -> ColumnElement[bool]:
    """SQL selecting ``table``'s rows that hang off the world (subqueries up the FK chain)."""
    if table.name == "worlds":
        return table.c.id == world_id
    if depth > 16:  # pragma: no cover - a cycle the plan should have excluded
        raise SnapshotError(f"foreign keys of {table.name} are too deeply nested")
    parts: list[ColumnElement[bool]] = []
    for fk in _owned_fks(table, owned):
        parent = fk.column.table
        assert isinstance(parent, Table)
        sub = select(fk.column).where(_criterion(parent, world_id, owned, depth + 1))
        parts.append(fk.parent.in_(sub))
    return or_(*parts)


# --- values <-> JSON ----------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _python_type(column: Column[Any]) -> type | None:
    kind: Any = column.type
    while isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return None
    try:
        return kind.python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return None


def _from_json(value: Any, column: Column[Any]) -> Any:
    if value is None:
        return None
    kind = _python_type(column)
    if kind is None or not isinstance(value, str):
        return value
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is dt.datetime:
        # SQLite hands timestamps back naive (they are UTC): say so for PostgreSQL's sake.
        return as_utc(dt.datetime.fromisoformat(value))
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    if kind is dt.time:
        return dt.time.fromisoformat(value)
    if kind is bytes:
        return base64.b64decode(value)
    if kind is decimal.Decimal:
        return decimal.Decimal(value)
    return value


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, default=_to_json, separators=(",", ":"), allow_nan=False).encode()


# --- writing --------------------------------------------------------------------------------


@dataclass
class SnapshotInfo:
    """What :func:`create_world_snapshot` wrote."""

    path: Path
    world_id: uuid.UUID
    world_name: str
    counts: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0


def _default_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "world"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path.cwd() / f"{safe}-{stamp}{SUFFIX}"


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)


def _alembic_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:
        return None
    return None if row is None else str(row[0])


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create_world_snapshot(
    engine: Engine,
    metadata: MetaData,
    world_id: uuid.UUID,
    path: str | os.PathLike[str] | None = None,
    *,
    version: str = "",
    progress: Callable[[int], None] | None = None,
) -> SnapshotInfo:
    """Write the snapshot of world ``world_id`` to ``path`` (default ``<name>-<UTC time>.vxsnap``).

    ``progress`` is called with the number of chunks written so far, every batch.
    """
    plan = _plan(metadata)
    owned_names = {t.name for t in plan.owned} | {"world_chunks"}
    worlds = metadata.tables["worlds"]
    with engine.connect() as conn:
        # One read transaction: on PostgreSQL REPEATABLE READ gives every table the same
        # snapshot while the game keeps writing; SQLite's read transaction does the same.
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            world = conn.execute(select(worlds).where(worlds.c.id == world_id)).mappings().first()
            if world is None:
                raise NotFoundError(f"world {world_id} does not exist")
            target = Path(path) if path is not None else _default_path(str(world["name"]))
            target = target.expanduser()
            if target.is_dir():
                target = target / _default_path(str(world["name"])).name
            if not target.parent.is_dir():
                raise SnapshotError(
                    f"cannot write snapshot: directory {target.parent} does not exist"
                )

            rows_by_table, selected = _collect_owned(conn, plan, world_id, owned_names)
            rows_by_table.update(_collect_references(conn, plan, rows_by_table, selected))
            revision = _alembic_revision(conn)

            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as raw:
                    counts, members = _write_archive(
                        raw,
                        conn,
                        plan,
                        world_id,
                        rows_by_table,
                        world_name=str(world["name"]),
                        world_settings=dict(world.get("world_settings") or {}),
                        backend=engine.dialect.name,
                        revision=revision,
                        version=version,
                        progress=progress,
                    )
                    raw.flush()
                    os.fsync(raw.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            _fsync_dir(target.parent)
    del members
    return SnapshotInfo(
        path=target,
        world_id=world_id,
        world_name=str(world["name"]),
        counts=counts,
        size_bytes=target.stat().st_size,
    )


def _collect_owned(
    conn: Connection, plan: _Plan, world_id: uuid.UUID, owned_names: set[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, str], set[Any]]]:
    rows_by_table: dict[str, list[dict[str, Any]]] = {}
    # Values of every referenced column among the selected rows, per (table, column).
    selected: dict[tuple[str, str], set[Any]] = {}
    for table in plan.owned:
        fks = _owned_fks(table, owned_names)
        result = conn.execute(
            select(table)
            .where(_criterion(table, world_id, owned_names))
            .order_by(*table.primary_key.columns)
        )
        kept: list[dict[str, Any]] = []
        for row in result.mappings():
            values = dict(row)
            ok = True
            for fk in fks:
                value = values[fk.parent.name]
                if value is None:
                    continue
                if value not in selected.get((fk.column.table.name, fk.column.name), set()):
                    # Points outside the world (a relationship with another world's
                    # character): a nullable link is cut, a mandatory one drops the row.
                    if fk.parent.nullable:
                        values[fk.parent.name] = None
                    else:
                        ok = False
                        break
            if ok:
                kept.append(values)
        rows_by_table[table.name] = kept
        for col in table.columns:
            if col.primary_key or col.unique:
                selected[(table.name, col.name)] = {r[col.name] for r in kept}
    return rows_by_table, selected


def _collect_references(
    conn: Connection,
    plan: _Plan,
    rows_by_table: dict[str, list[dict[str, Any]]],
    selected: dict[tuple[str, str], set[Any]],
) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    all_tables = [*plan.owned, *plan.references]
    # Children before parents: an agent's row is read before the user it may point at.
    for ref in reversed(plan.references):
        wanted: dict[str, set[Any]] = {}
        for table in all_tables:
            rows = rows_by_table.get(table.name) or found.get(table.name) or []
            for fk in table.foreign_keys:
                if fk.column.table is ref and table is not ref:
                    values = {r[fk.parent.name] for r in rows} - {None}
                    wanted.setdefault(fk.column.name, set()).update(values)
        rows_out: dict[tuple[Any, ...], dict[str, Any]] = {}
        redacted = _REDACTED.get(ref.name, {})
        pk = [c.name for c in ref.primary_key.columns]
        for colname, values in wanted.items():
            ordered = sorted(values, key=str)
            for i in range(0, len(ordered), _IN_LIST):
                chunk = ordered[i : i + _IN_LIST]
                for row in conn.execute(select(ref).where(ref.c[colname].in_(chunk))).mappings():
                    values_row = {k: v for k, v in row.items() if k not in redacted}
                    rows_out[tuple(values_row[c] for c in pk)] = values_row
        found[ref.name] = [rows_out[k] for k in sorted(rows_out, key=str)]
    del selected
    return found


def _write_archive(
    raw: IO[bytes],
    conn: Connection,
    plan: _Plan,
    world_id: uuid.UUID,
    rows_by_table: dict[str, list[dict[str, Any]]],
    *,
    world_name: str,
    world_settings: dict[str, Any],
    backend: str,
    revision: str | None,
    version: str,
    progress: Callable[[int], None] | None,
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    members: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    order: list[dict[str, str]] = []
    with zipfile.ZipFile(raw, "w", allowZip64=True) as zf:
        for role, tables in (("reference", plan.references), ("owned", plan.owned)):
            for table in tables:
                rows = rows_by_table.get(table.name, [])
                columns = [c.name for c in table.columns if c.name in (rows[0] if rows else {})]
                if not rows:
                    columns = [
                        c.name for c in table.columns if c.name not in _REDACTED.get(table.name, {})
                    ]
                payload = _json_bytes(
                    {
                        "table": table.name,
                        "role": role,
                        "columns": columns,
                        "rows": [[r[c] for c in columns] for r in rows],
                    }
                )
                name = f"tables/{table.name}.json"
                zf.writestr(name, payload, compress_type=zipfile.ZIP_DEFLATED)
                members[name] = {
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "size": len(payload),
                }
                counts[table.name] = len(rows)
                order.append({"table": table.name, "role": role, "member": name})

        info = zipfile.ZipInfo(CHUNKS_MEMBER, date_time=_zip_time())
        info.compress_type = zipfile.ZIP_STORED  # the codec's bytes are LZ4 already
        chunks = plan.chunks
        n = 0
        with zf.open(info, "w", force_zip64=True) as member:
            out = _HashingWriter(member)
            out.write(_CHUNK_MAGIC)
            query = (
                select(
                    chunks.c.chunk_x,
                    chunks.c.chunk_z,
                    chunks.c.version,
                    chunks.c.data,
                    chunks.c.chunk_metadata,
                )
                .where(chunks.c.world_id == world_id)
                .order_by(chunks.c.chunk_x, chunks.c.chunk_z)
            )
            result = conn.execute(query, execution_options={"yield_per": _BATCH})
            for cx, cz, ver, data, meta in result:
                blob = bytes(data)
                meta_bytes = b"" if meta is None else _json_bytes(meta)
                out.write(_RECORD.pack(cx, cz, int(ver), len(blob), len(meta_bytes)))
                out.write(blob)
                if meta_bytes:
                    out.write(meta_bytes)
                n += 1
                if progress is not None and n % _BATCH == 0:
                    progress(n)
        if progress is not None:
            progress(n)
        members[CHUNKS_MEMBER] = {"sha256": out.sha.hexdigest(), "size": out.size}
        counts["world_chunks"] = n

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "voxeldb_version": version,
            "source": {"backend": backend, "alembic_revision": revision},
            "world": {
                "id": str(world_id),
                "name": world_name,
                "height": world_shape(world_settings)[0],
                "min_y": world_shape(world_settings)[1],
            },
            "counts": counts,
            "tables": order,
            "redacted_columns": {t: sorted(cols) for t, cols in _REDACTED.items()},
            "members": members,
        }
        zf.writestr(
            MANIFEST,
            json.dumps(manifest, indent=2, sort_keys=True).encode(),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return counts, members


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = dt.datetime.now(dt.UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


# --- reading --------------------------------------------------------------------------------

_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, KeyError)


class _Snapshot:
    """An opened snapshot whose manifest has been checked; members are verified as read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise SnapshotError(f"snapshot {path} does not exist")
        if not path.is_file():
            raise SnapshotError(f"snapshot {path} is not a file")
        try:
            self.zf = zipfile.ZipFile(path, "r")
        except _ZIP_ERRORS as exc:
            raise SnapshotError(
                f"snapshot {path} is not a readable snapshot archive (truncated or not a "
                f"voxeldb snapshot): {exc}"
            ) from None
        try:
            self.manifest = self._read_manifest()
        except BaseException:
            self.zf.close()
            raise

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> _Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str) -> SnapshotError:
        return SnapshotError(f"snapshot {self.path} is corrupt: {what}")

    def _read_manifest(self) -> dict[str, Any]:
        try:
            info = self.zf.getinfo(MANIFEST)
        except KeyError:
            raise SnapshotError(
                f"snapshot {self.path} has no {MANIFEST}: not a voxeldb world snapshot"
            ) from None
        if info.file_size > _MAX_MANIFEST_BYTES:
            raise self._fail(f"{MANIFEST} declares {info.file_size} bytes, past the limit")
        try:
            raw = self.zf.read(MANIFEST)
            manifest = json.loads(raw)
        except (*_ZIP_ERRORS, ValueError) as exc:
            raise self._fail(f"{MANIFEST} cannot be read: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise SnapshotError(f"snapshot {self.path}: {MANIFEST} is not a {FORMAT} manifest")
        fv = manifest.get("format_version")
        if fv != FORMAT_VERSION:
            raise SnapshotError(
                f"snapshot {self.path} has format version {fv!r}; this voxeldb reads version "
                f"{FORMAT_VERSION}"
            )
        try:
            members = manifest["members"]
            world = manifest["world"]
            uuid.UUID(str(world["id"]))
            str(world["name"])
            for entry in manifest["tables"]:
                if entry["member"] not in members:
                    raise KeyError(entry["member"])
            for name, meta in members.items():
                if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("size"), int):
                    raise KeyError(name)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._fail(f"{MANIFEST} is incomplete or malformed ({exc!r})") from None
        names = set(self.zf.namelist())
        missing = sorted(set(members) - names)
        if missing:
            raise self._fail(f"member(s) {', '.join(missing)} listed in the manifest are missing")
        for name, meta in members.items():
            if self.zf.getinfo(name).file_size != meta["size"]:
                raise self._fail(
                    f"member {name} holds {self.zf.getinfo(name).file_size} bytes, the "
                    f"manifest says {meta['size']}"
                )
        return manifest

    def read_member(self, name: str) -> bytes:
        meta = self.manifest["members"][name]
        try:
            data = self.zf.read(name)
        except _ZIP_ERRORS as exc:
            raise self._fail(f"member {name} cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise self._fail(f"member {name} does not match its SHA-256 in the manifest")
        return data

    def table(self, name: str) -> dict[str, Any]:
        member = f"tables/{name}.json"
        raw = self.read_member(member)
        try:
            payload = json.loads(raw)
            if not isinstance(payload["columns"], list) or not isinstance(payload["rows"], list):
                raise TypeError("columns/rows are not lists")
        except (ValueError, KeyError, TypeError) as exc:
            raise self._fail(f"member {member} is malformed: {exc}") from None
        return payload  # type: ignore[no-any-return]

    def verify_member(self, name: str) -> None:
        """Read ``name`` through, checking its CRC and SHA-256 (no bytes kept)."""
        meta = self.manifest["members"][name]
        sha = hashlib.sha256()
        try:
            with self.zf.open(name) as fh:
                while block := fh.read(1 << 20):
                    sha.update(block)
        except _ZIP_ERRORS as exc:
            raise self._fail(f"member {name} cannot be read: {exc}") from None
        if sha.hexdigest() != meta["sha256"]:
            raise self._fail(f"member {name} does not match its SHA-256 in the manifest")

    def chunk_records(self) -> Iterator[tuple[int, int, int, bytes, Any]]:
        """Every chunk record, hashing as it goes; a mismatch raises after the last record."""
        meta = self.manifest["members"][CHUNKS_MEMBER]
        sha = hashlib.sha256()
        try:
            with self.zf.open(CHUNKS_MEMBER) as fh:
                reader = fh  # ZipExtFile buffers, and read(n) returns n bytes until the end

                def take(n: int) -> bytes:
                    data = reader.read(n)
                    if len(data) != n:
                        raise self._fail(f"member {CHUNKS_MEMBER} ends inside a record")
                    sha.update(data)
                    return data

                if take(len(_CHUNK_MAGIC)) != _CHUNK_MAGIC:
                    raise self._fail(f"member {CHUNKS_MEMBER} does not start with its magic")
                while True:
                    head = reader.read(_RECORD.size)
                    if not head:
                        break
                    if len(head) != _RECORD.size:
                        raise self._fail(f"member {CHUNKS_MEMBER} ends inside a record header")
                    sha.update(head)
                    cx, cz, version, n_data, n_meta = _RECORD.unpack(head)
                    if n_data > meta["size"] or n_meta > meta["size"]:
                        raise self._fail(f"chunk ({cx}, {cz}) declares a size past the member")
                    data = take(n_data)
                    chunk_meta = json.loads(take(n_meta)) if n_meta else None
                    yield cx, cz, version, data, chunk_meta
        except SnapshotError:
            raise
        except (*_ZIP_ERRORS, ValueError) as exc:
            raise self._fail(f"member {CHUNKS_MEMBER} cannot be read: {exc}") from None
        if sha.hexdigest() != meta["sha256"]:
            raise self._fail(f"member {CHUNKS_MEMBER} does not match its SHA-256 in the manifest")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of the snapshot at ``path`` (members are not verified)."""
    with _Snapshot(Path(path)) as snap:
        return dict(snap.manifest)


# --- restoring --------------------------------------------------------------------------------


def _existing_match(
    conn: Connection, table: Table, values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The row of ``table`` on the target that is the same object as ``values``, if any.

    The primary key first, then each unique column or unique constraint (a user with the same
    username is the same player).
    """
    pk = list(table.primary_key.columns)
    row = conn.execute(select(table).where(and_(*(c == values[c.name] for c in pk)))).first()
    if row is not None:
        return dict(row._mapping)
    candidates: list[list[Column[Any]]] = [[c] for c in table.columns if c.unique]
    for constraint in table.constraints:
        cols = list(getattr(constraint, "columns", []))
        if constraint.__class__.__name__ == "UniqueConstraint" and cols:
            candidates.append(cols)
    for index in table.indexes:
        if index.unique:
            candidates.append([c for c in index.columns if isinstance(c, Column)])
    for cols in candidates:
        if not cols or any(values.get(c.name) is None for c in cols):
            continue
        row = conn.execute(select(table).where(and_(*(c == values[c.name] for c in cols)))).first()
        if row is not None:
            return dict(row._mapping)
    return None


def restore_world_snapshot(
    engine: Engine,
    metadata: MetaData,
    path: str | os.PathLike[str],
    *,
    new_id: bool = False,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    restored_keys: list[tuple[int, int]] | None = None,
) -> uuid.UUID:
    """Restore the snapshot at ``path`` into ``engine``'s database; returns the world's id.

    All or nothing: one transaction. ``progress(done, total)`` is called as chunks are written;
    the ``(cx, cz)`` of every restored chunk is appended to ``restored_keys`` if given.
    """
    plan = _plan(metadata)
    if name is not None and not name.strip():
        raise SnapshotError("the new world name is empty")
    with _Snapshot(Path(path)) as snap:
        manifest = snap.manifest
        old_world_id = uuid.UUID(str(manifest["world"]["id"]))
        total_chunks = int(manifest.get("counts", {}).get("world_chunks", 0))
        tables: dict[str, dict[str, Any]] = {}
        for entry in manifest["tables"]:
            tables[entry["table"]] = snap.table(entry["table"])
            tables[entry["table"]]["role"] = entry["role"]
        unknown = sorted(set(tables) - set(metadata.tables))
        if unknown:
            raise SnapshotError(
                f"snapshot {snap.path} has table(s) {', '.join(unknown)} that this database "
                "schema does not know (made by a newer voxeldb?)"
            )
        for tname, payload in tables.items():
            extra = sorted(set(payload["columns"]) - set(metadata.tables[tname].columns.keys()))
            if extra:
                raise SnapshotError(
                    f"snapshot {snap.path}: table {tname} has column(s) {', '.join(extra)} that "
                    "this database schema does not know (made by a newer voxeldb?)"
                )
        world_rows = tables.get("worlds", {}).get("rows", [])
        if len(world_rows) != 1:
            raise snap._fail(f"tables/worlds.json holds {len(world_rows)} rows, expected 1")

        try:
            with engine.connect() as conn:
                if engine.dialect.name == "sqlite":
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    world_id = _restore_rows(
                        conn, metadata, plan, tables, old_world_id, new_id=new_id, name=name
                    )
                    keys = _restore_chunks(
                        conn, plan.chunks, snap, world_id, total_chunks, progress=progress
                    )
        except IntegrityError as exc:
            raise SnapshotError(
                f"cannot restore {snap.path}: rows of the snapshot conflict with rows on the "
                f"target ({str(exc.orig).splitlines()[0] if exc.orig else exc}); restore with "
                "new_id=True (--new-id) to make a copy with new ids"
            ) from None
    if restored_keys is not None:
        restored_keys.extend(keys)
    return world_id


def _restore_rows(
    conn: Connection,
    metadata: MetaData,
    plan: _Plan,
    tables: dict[str, dict[str, Any]],
    old_world_id: uuid.UUID,
    *,
    new_id: bool,
    name: str | None,
) -> uuid.UUID:
    worlds = metadata.tables["worlds"]
    wpayload = tables["worlds"]
    world_values = dict(zip(wpayload["columns"], wpayload["rows"][0], strict=True))
    world_name = name if name is not None else str(world_values["name"])
    limit = getattr(worlds.c.name.type, "length", None)
    if limit is not None and len(world_name) > limit:
        raise SnapshotError(f"world name {world_name[:40]!r}... is longer than {limit} characters")
    if not new_id:
        existing = conn.execute(
            select(worlds.c.name).where(worlds.c.id == old_world_id)
        ).scalar_one_or_none()
        if existing is not None:
            raise SnapshotError(
                f"world {old_world_id} already exists on the target (named {existing!r}); "
                "restore with new_id=True (--new-id) to make a copy"
            )
    clash = conn.execute(
        select(worlds.c.id).where(worlds.c.name == world_name)
    ).scalar_one_or_none()
    if clash is not None:
        raise SnapshotError(
            f"a world named {world_name!r} already exists on the target (id {clash}); "
            "restore under another name (name=... / --as-name)"
        )

    # (table, column) -> {old value: new value}; only primary-key columns are ever remapped.
    remap: dict[tuple[str, str], dict[Any, Any]] = {}

    def convert(table: Table, payload: dict[str, Any]) -> list[dict[str, Any]]:
        cols = [table.c[c] for c in payload["columns"]]
        out = []
        for raw in payload["rows"]:
            if len(raw) != len(cols):
                raise SnapshotError(f"a row of table {table.name} has the wrong number of values")
            try:
                out.append({c.name: _from_json(v, c) for c, v in zip(cols, raw, strict=True)})
            except (ValueError, TypeError) as exc:
                raise SnapshotError(f"a value of table {table.name} is malformed: {exc}") from None
        return out

    def apply_fks(table: Table, values: dict[str, Any]) -> None:
        for fk in table.foreign_keys:
            col = fk.parent.name
            mapping = remap.get((fk.column.table.name, fk.column.name))
            if mapping is not None and values.get(col) in mapping:
                values[col] = mapping[values[col]]

    for ref in plan.references:
        payload = tables.get(ref.name)
        if payload is None:
            continue
        pk = list(ref.primary_key.columns)
        for values in convert(ref, payload):
            apply_fks(ref, values)
            match = _existing_match(conn, ref, values)
            if match is not None:
                if len(pk) == 1:
                    remap.setdefault((ref.name, pk[0].name), {})[values[pk[0].name]] = match[
                        pk[0].name
                    ]
                continue
            for col, factory in _REDACTED.get(ref.name, {}).items():
                if factory is not None:
                    values.setdefault(col, factory())
            conn.execute(insert(ref), [values])

    for table in plan.owned:
        payload = tables.get(table.name)
        if payload is None:
            continue
        rows = convert(table, payload)
        pk = list(table.primary_key.columns)
        own_ids = len(pk) == 1 and _python_type(pk[0]) is uuid.UUID
        if table.name == "worlds":
            for values in rows:
                values["name"] = world_name
                if new_id:
                    remap[("worlds", "id")] = {values["id"]: uuid.uuid4()}
        elif new_id and own_ids:
            remap[(table.name, pk[0].name)] = {v[pk[0].name]: uuid.uuid4() for v in rows}
        for values in rows:
            if table.name == "worlds" or (new_id and own_ids):
                mapping = remap.get((table.name, pk[0].name), {})
                values[pk[0].name] = mapping.get(values[pk[0].name], values[pk[0].name])
            apply_fks(table, values)
        for i in range(0, len(rows), _BATCH):
            conn.execute(insert(table), rows[i : i + _BATCH])

    return remap.get(("worlds", "id"), {}).get(old_world_id, old_world_id)  # type: ignore[no-any-return]


def _restore_chunks(
    conn: Connection,
    chunks: Table,
    snap: _Snapshot,
    world_id: uuid.UUID,
    total: int,
    *,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[int, int]]:
    batch: list[dict[str, Any]] = []
    keys: list[tuple[int, int]] = []
    done = 0
    stmt = insert(chunks)
    version = fresh_version()
    for cx, cz, _stored_version, data, meta in snap.chunk_records():
        keys.append((cx, cz))
        batch.append(
            {
                "world_id": world_id,
                "chunk_x": cx,
                "chunk_z": cz,
                "chunk_y": 0,
                "data": data,
                "version": version,
                "chunk_metadata": meta,
            }
        )
        if len(batch) >= _BATCH:
            conn.execute(stmt, batch)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done, total)
    if batch:
        conn.execute(stmt, batch)
        done += len(batch)
    if done != total:
        raise snap._fail(f"{CHUNKS_MEMBER} holds {done} chunks, the manifest says {total}")
    if progress is not None:
        progress(done, total)
    return keys


def snapshot_members(path: str | os.PathLike[str]) -> Sequence[str]:
    """Names of the members of the snapshot at ``path`` (for tests and diagnostics)."""
    with _Snapshot(Path(path)) as snap:
        return snap.zf.namelist()
