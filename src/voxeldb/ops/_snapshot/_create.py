"""Writing a world snapshot: one read transaction, a temporary file, fsync, rename.

On PostgreSQL the read runs at REPEATABLE READ, so every table comes from the same moment
while the game keeps writing. The file is written under a temporary name in the target
directory, fsynced and renamed: a crash leaves either the complete snapshot or none. Chunks
are copied as stored (the codec's bytes), never decoded.

With ``since``, the file is an *increment* (``_archive.INCREMENT_FORMAT``): the world row,
its block-state registry (which the chunks' ids need), and only the chunks the caller names
as changed after journal seq ``since`` -- those still stored as they are now, the others as
deletions. The caller (``DatabaseSetup``) reads the keys and the head from the journal before
this read transaction starts: every change up to the head is then in the file, and a chunk
changed later holds a newer state still, which the next increment carries again.

A process killed while writing (``kill -9``, a power cut) cannot remove its temporary file,
so the name carries the writer's pid (``.<target>.voxeldb-<pid>-<random>.tmp``) and every
create first removes, in its target directory, such files whose process is gone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, MetaData, select, text, tuple_

from voxeldb.chunks import world_shape
from voxeldb.errors import NotFoundError, SnapshotError
from voxeldb.ops._snapshot._archive import (
    BATCH,
    CHUNK_MAGIC,
    CHUNKS_MEMBER,
    DELETED_MAGIC,
    DELETED_MEMBER,
    DELETED_RECORD,
    FORMAT,
    FORMAT_VERSION,
    INCREMENT_FORMAT,
    MANIFEST,
    RECORD,
    SUFFIX,
    HashingWriter,
    zip_time,
)
from voxeldb.ops._snapshot._rows import (
    REDACTED,
    Plan,
    criterion,
    json_bytes,
    owned_fks,
    plan_tables,
)

__all__ = ["SnapshotInfo", "create_world_snapshot", "remove_stale_temp_files"]

_IN_LIST = 500
"""Values per ``IN (...)`` when reading the reference rows."""
_TEMP = re.compile(r"^\..+\.voxeldb-([0-9]+)-[A-Za-z0-9_]+\.tmp$")
"""A temporary snapshot file of ours, and the pid of the process that writes it."""


@dataclass
class SnapshotInfo:
    """What :func:`create_world_snapshot` wrote."""

    path: Path
    world_id: uuid.UUID
    world_name: str
    counts: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    journal_head: int | None = None
    """The journal seq the file holds every change up to (None: not recorded)."""
    since: int | None = None
    """An increment's start: it holds the changes after this seq (None: a whole world)."""


def _default_path(name: str, since: int | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "world"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    part = "" if since is None else f"-since{since}"
    return Path.cwd() / f"{safe}-{stamp}{part}{SUFFIX}"


def _alembic_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:
        return None
    return None if row is None else str(row[0])


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process we could have been: leave the file alone
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's (PermissionError), or cannot tell
    return True


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Remove the temporary files of snapshot writers in ``directory`` whose process is gone;
    returns them. Files of live processes, and files not named as ours, are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


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
    journal_head: int | None = None,
    since: int | None = None,
    changed: Sequence[tuple[int, int]] = (),
) -> SnapshotInfo:
    """Write the snapshot of world ``world_id`` to ``path`` (default ``<name>-<UTC time>.vxsnap``).

    ``progress`` is called with the number of chunks written so far, every batch.
    ``journal_head`` is recorded in the manifest. With ``since`` the file is an increment
    holding the chunks ``changed`` (see the module docstring); ``journal_head`` is then
    required.
    """
    plan = plan_tables(metadata)
    if since is not None:
        if journal_head is None or journal_head < since:
            raise ValueError("an increment needs a journal_head at or after since")
        keep = {"worlds", "block_states"}
        plan = replace(plan, owned=[t for t in plan.owned if t.name in keep], references=[])
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
            default = _default_path(str(world["name"]), since)
            target = Path(path) if path is not None else default
            target = target.expanduser()
            if target.is_dir():
                target = target / default.name
            if not target.parent.is_dir():
                raise SnapshotError(
                    f"cannot write snapshot: directory {target.parent} does not exist"
                )

            rows_by_table = _collect_owned(conn, plan, world_id, owned_names)
            rows_by_table.update(_collect_references(conn, plan, rows_by_table))
            revision = _alembic_revision(conn)

            remove_stale_temp_files(target.parent)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{target.name}.voxeldb-{os.getpid()}-", suffix=".tmp", dir=target.parent
            )
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as raw:
                    counts = _write_archive(
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
                        journal_head=journal_head,
                        since=since,
                        changed=changed,
                    )
                    raw.flush()
                    os.fsync(raw.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            _fsync_dir(target.parent)
    return SnapshotInfo(
        path=target,
        world_id=world_id,
        world_name=str(world["name"]),
        counts=counts,
        size_bytes=target.stat().st_size,
        journal_head=journal_head,
        since=since,
    )


def _collect_owned(
    conn: Connection, plan: Plan, world_id: uuid.UUID, owned_names: set[str]
) -> dict[str, list[dict[str, Any]]]:
    rows_by_table: dict[str, list[dict[str, Any]]] = {}
    # Values of every referenced column among the selected rows, per (table, column).
    selected: dict[tuple[str, str], set[Any]] = {}
    for table in plan.owned:
        fks = owned_fks(table, owned_names)
        result = conn.execute(
            select(table)
            .where(criterion(table, world_id, owned_names))
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
    return rows_by_table


def _collect_references(
    conn: Connection,
    plan: Plan,
    rows_by_table: dict[str, list[dict[str, Any]]],
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
        redacted = REDACTED.get(ref.name, {})
        pk = [c.name for c in ref.primary_key.columns]
        for colname, values in wanted.items():
            ordered = sorted(values, key=str)
            for i in range(0, len(ordered), _IN_LIST):
                chunk = ordered[i : i + _IN_LIST]
                for row in conn.execute(select(ref).where(ref.c[colname].in_(chunk))).mappings():
                    values_row = {k: v for k, v in row.items() if k not in redacted}
                    rows_out[tuple(values_row[c] for c in pk)] = values_row
        found[ref.name] = [rows_out[k] for k in sorted(rows_out, key=str)]
    return found


def _write_archive(
    raw: IO[bytes],
    conn: Connection,
    plan: Plan,
    world_id: uuid.UUID,
    rows_by_table: dict[str, list[dict[str, Any]]],
    *,
    world_name: str,
    world_settings: dict[str, Any],
    backend: str,
    revision: str | None,
    version: str,
    progress: Callable[[int], None] | None,
    journal_head: int | None = None,
    since: int | None = None,
    changed: Sequence[tuple[int, int]] = (),
) -> dict[str, int]:
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
                        c.name for c in table.columns if c.name not in REDACTED.get(table.name, {})
                    ]
                payload = json_bytes(
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

        info = zipfile.ZipInfo(CHUNKS_MEMBER, date_time=zip_time())
        info.compress_type = zipfile.ZIP_STORED  # the codec's bytes are LZ4 already
        chunks = plan.chunks
        n = 0
        deleted: list[tuple[int, int]] = []
        with zf.open(info, "w", force_zip64=True) as member:
            out = HashingWriter(member)
            out.write(CHUNK_MAGIC)
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
            if since is None:
                records: Any = conn.execute(query, execution_options={"yield_per": BATCH})
            else:
                records = _changed_chunks(conn, query, chunks, changed, deleted)
            for cx, cz, ver, data, meta in records:
                blob = bytes(data)
                meta_bytes = b"" if meta is None else json_bytes(meta)
                out.write(RECORD.pack(cx, cz, int(ver), len(blob), len(meta_bytes)))
                out.write(blob)
                if meta_bytes:
                    out.write(meta_bytes)
                n += 1
                if progress is not None and n % BATCH == 0:
                    progress(n)
        if progress is not None:
            progress(n)
        members[CHUNKS_MEMBER] = {"sha256": out.sha.hexdigest(), "size": out.size}
        counts["world_chunks"] = n
        if since is not None:
            payload = DELETED_MAGIC + b"".join(DELETED_RECORD.pack(x, z) for x, z in deleted)
            zf.writestr(DELETED_MEMBER, payload, compress_type=zipfile.ZIP_DEFLATED)
            members[DELETED_MEMBER] = {
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size": len(payload),
            }
            counts["deleted_chunks"] = len(deleted)

        manifest: dict[str, Any] = {
            "format": FORMAT if since is None else INCREMENT_FORMAT,
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
            "redacted_columns": {t: sorted(cols) for t, cols in REDACTED.items()},
            "members": members,
        }
        if journal_head is not None:
            manifest["journal"] = {"head": journal_head}
        if since is not None:
            manifest["increment"] = {"since": since, "head": journal_head}
        zf.writestr(
            MANIFEST,
            json.dumps(manifest, indent=2, sort_keys=True).encode(),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return counts


def _changed_chunks(
    conn: Connection,
    query: Any,
    chunks: Any,
    changed: Sequence[tuple[int, int]],
    deleted: list[tuple[int, int]],
) -> Iterator[Any]:
    """The stored chunks among ``changed``, in key order; the absent ones go to ``deleted``."""
    keys = sorted(set(changed))
    for i in range(0, len(keys), _IN_LIST):
        part = keys[i : i + _IN_LIST]
        found = set()
        for row in conn.execute(query.where(tuple_(chunks.c.chunk_x, chunks.c.chunk_z).in_(part))):
            found.add((int(row[0]), int(row[1])))
            yield row
        deleted.extend(k for k in part if k not in found)
