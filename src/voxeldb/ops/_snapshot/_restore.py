"""Restoring a world snapshot: one transaction, every member checked, fresh chunk versions.

Reference rows (users, agents) that exist on the target already (same id, or the same value
of a unique column such as ``username``) are used as they are; a user created by a restore
gets an unusable password hash. Restored chunks get a fresh ``version``
(``voxeldb._ids.fresh_version``), not the one in the file: the world may have been edited
after the snapshot and deleted since, and caches may still hold those later versions with
other contents. A fresh version is past all of them, so no cache needs clearing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, Table, and_, insert, select
from sqlalchemy.exc import IntegrityError

from voxeldb._ids import fresh_version
from voxeldb.errors import SnapshotError
from voxeldb.ops._snapshot._archive import BATCH, CHUNKS_MEMBER, SnapshotReader
from voxeldb.ops._snapshot._rows import REDACTED, Plan, from_json, plan_tables, python_type

__all__ = ["restore_world_snapshot"]


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
    plan = plan_tables(metadata)
    if name is not None and not name.strip():
        raise SnapshotError("the new world name is empty")
    with SnapshotReader(Path(path)) as snap:
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
            raise snap.fail(f"tables/worlds.json holds {len(world_rows)} rows, expected 1")

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
    plan: Plan,
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
                out.append({c.name: from_json(v, c) for c, v in zip(cols, raw, strict=True)})
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
            for col, factory in REDACTED.get(ref.name, {}).items():
                if factory is not None:
                    values.setdefault(col, factory())
            conn.execute(insert(ref), [values])

    for table in plan.owned:
        payload = tables.get(table.name)
        if payload is None:
            continue
        rows = convert(table, payload)
        pk = list(table.primary_key.columns)
        own_ids = len(pk) == 1 and python_type(pk[0]) is uuid.UUID
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
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[i : i + BATCH])

    return remap.get(("worlds", "id"), {}).get(old_world_id, old_world_id)  # type: ignore[no-any-return]


def _restore_chunks(
    conn: Connection,
    chunks: Table,
    snap: SnapshotReader,
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
        if len(batch) >= BATCH:
            conn.execute(stmt, batch)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done, total)
    if batch:
        conn.execute(stmt, batch)
        done += len(batch)
    if done != total:
        raise snap.fail(f"{CHUNKS_MEMBER} holds {done} chunks, the manifest says {total}")
    if progress is not None:
        progress(done, total)
    return keys
