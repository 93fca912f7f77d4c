"""Restoring a world snapshot: one transaction, every member checked, fresh chunk versions.

A snapshot may come from anywhere, so nothing in it is trusted:

- Members are read as streams, bounded (``_archive``); every chunk is decoded, and must have
  the world's height, before the transaction commits.
- Users: password hashes and login history in the file are ignored; a user created by a
  restore gets an unusable password marker (``_rows.unusable_password_hash``) and must be
  given a password. A file user with the id of a user on the target is that user. Otherwise
  a file user whose e-mail (in any case) belongs to an existing user is refused, unless the
  caller opts in with ``match_users_by_email`` (then the existing user gets the world's
  characters); a file user whose username (in any case) is taken gets a fresh one
  (``alice-2``).
- Other reference rows (agents) that exist on the target already (same id, or the same value
  of a unique column such as ``agent_name``) are used as they are.

Restored chunks get a fresh ``version`` (``voxeldb._ids.fresh_version``), not the one in the
file: the world may have been edited after the snapshot and deleted since, and caches may
still hold those later versions with other contents. A fresh version is past all of them, so
no cache needs clearing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, Table, and_, func, insert, select
from sqlalchemy.exc import DataError, IntegrityError

from voxeldb._ids import fresh_version
from voxeldb.chunks import MAX_HEIGHT, decode_chunk, world_shape
from voxeldb.errors import ChunkFormatError, SnapshotError
from voxeldb.ops._snapshot._archive import (
    BATCH,
    BATCH_BYTES,
    CHUNKS_MEMBER,
    SnapshotReader,
    TableMember,
)
from voxeldb.ops._snapshot._rows import (
    REDACTED,
    REGENERATED,
    Plan,
    from_json,
    plan_tables,
    python_type,
)

__all__ = ["restore_world_snapshot"]


def _existing_match(
    conn: Connection, table: Table, values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The row of ``table`` on the target that is the same object as ``values``, if any.

    The primary key first, then each unique column or unique constraint (an agent with the
    same ``agent_name`` is the same agent). Users are matched by :func:`_place_user`.
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


def _text_field(values: Mapping[str, Any], column: str) -> str:
    value = values.get(column)
    if not isinstance(value, str) or not value.strip():
        raise SnapshotError(f"a user of the snapshot has no valid {column} ({value!r:.60})")
    return value


def _place_user(
    conn: Connection, users: Table, values: dict[str, Any], *, match_users_by_email: bool
) -> Any | None:
    """The id of the existing user a file user is, or None after giving ``values`` a free
    username (the caller inserts it). Usernames and e-mails compare whatever their case."""
    row = conn.execute(select(users.c.id).where(users.c.id == values["id"])).first()
    if row is not None:
        return row[0]
    username, email = _text_field(values, "username"), _text_field(values, "email")
    owner = conn.execute(
        select(users.c.id, users.c.username).where(func.lower(users.c.email) == email.lower())
    ).first()
    if owner is not None:
        if match_users_by_email:
            return owner[0]
        raise SnapshotError(
            f"user {username!r} of the snapshot has the e-mail {email!r} of the existing user "
            f"{owner[1]!r} (another account): restore with match_users_by_email=True "
            "(--match-users-by-email) to give that user the snapshot's characters"
        )
    limit = getattr(users.c.username.type, "length", None) or 50
    candidate, n = username, 1
    while (
        conn.execute(
            select(users.c.id).where(func.lower(users.c.username) == candidate.lower())
        ).first()
        is not None
    ):
        n += 1
        suffix = f"-{n}"
        candidate = username[: limit - len(suffix)] + suffix
    values["username"] = candidate
    return None


def restore_world_snapshot(
    engine: Engine,
    metadata: MetaData,
    path: str | os.PathLike[str],
    *,
    new_id: bool = False,
    name: str | None = None,
    match_users_by_email: bool = False,
    progress: Callable[[int, int], None] | None = None,
    restored_keys: list[tuple[int, int]] | None = None,
) -> uuid.UUID:
    """Restore the snapshot at ``path`` into ``engine``'s database; returns the world's id.

    All or nothing: one transaction. ``progress(done, total)`` is called as chunks are written;
    the ``(cx, cz)`` of every restored chunk is appended to ``restored_keys`` if given.
    ``match_users_by_email``: a file user whose e-mail belongs to an existing user is that
    user (default: refused).
    """
    plan = plan_tables(metadata)
    if name is not None and not name.strip():
        raise SnapshotError("the new world name is empty")
    with SnapshotReader(Path(path)) as snap:
        manifest = snap.manifest
        old_world_id = uuid.UUID(manifest["world"]["id"])
        total_chunks: int = manifest["counts"]["world_chunks"]
        roles = {entry["table"]: entry["role"] for entry in manifest["tables"]}
        unknown = sorted(set(roles) - set(metadata.tables))
        if unknown:
            raise SnapshotError(
                f"snapshot {snap.path} has table(s) {', '.join(unknown)} that this database "
                "schema does not know (made by a newer voxeldb?)"
            )
        for tname in roles:
            member = snap.table(tname)
            member.close()
            table = metadata.tables[tname]
            extra = sorted(set(member.columns) - set(table.columns.keys()))
            if extra:
                raise SnapshotError(
                    f"snapshot {snap.path}: table {tname} has column(s) {', '.join(extra)} that "
                    "this database schema does not know (made by a newer voxeldb?)"
                )
            missing = [c.name for c in table.primary_key.columns if c.name not in member.columns]
            if missing:
                raise snap.fail(f"table {tname} has no column {', '.join(missing)}")
        if manifest["counts"]["worlds"] != 1:
            raise snap.fail(
                f"tables/worlds.json holds {manifest['counts']['worlds']} rows, expected 1"
            )

        try:
            with engine.connect() as conn:
                if engine.dialect.name == "sqlite":
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    world_id, height = _restore_rows(
                        conn,
                        metadata,
                        plan,
                        snap,
                        set(roles),
                        old_world_id,
                        new_id=new_id,
                        name=name,
                        match_users_by_email=match_users_by_email,
                    )
                    keys = _restore_chunks(
                        conn, plan.chunks, snap, world_id, height, total_chunks, progress=progress
                    )
        except IntegrityError as exc:
            raise SnapshotError(
                f"cannot restore {snap.path}: rows of the snapshot conflict with rows on the "
                f"target ({_first_line(exc)}); restore with new_id=True (--new-id) to make a "
                "copy with new ids"
            ) from None
        except DataError as exc:
            raise SnapshotError(
                f"cannot restore {snap.path}: the database refuses a value of the snapshot "
                f"({_first_line(exc)})"
            ) from None
    if restored_keys is not None:
        restored_keys.extend(keys)
    return world_id


def _first_line(exc: IntegrityError | DataError) -> str:
    return (str(exc.orig) if exc.orig else str(exc)).splitlines()[0][:300]


def _world_height(settings: object) -> int:
    if settings is not None and not isinstance(settings, dict):
        raise SnapshotError("the world's settings in the snapshot are not an object")
    try:
        height, _ = world_shape(settings)
    except (TypeError, ValueError):
        raise SnapshotError("the world's height in the snapshot is not an integer") from None
    if not 0 < height <= MAX_HEIGHT or height % 16:
        raise SnapshotError(
            f"the world's height in the snapshot ({height}) is not a positive multiple of 16 "
            f"up to {MAX_HEIGHT}"
        )
    return height


def _restore_rows(
    conn: Connection,
    metadata: MetaData,
    plan: Plan,
    snap: SnapshotReader,
    present: set[str],
    old_world_id: uuid.UUID,
    *,
    new_id: bool,
    name: str | None,
    match_users_by_email: bool,
) -> tuple[uuid.UUID, int]:
    """Insert every row of the snapshot, table by table, streamed; the world's id and height."""

    def convert(table: Table, member: TableMember) -> Iterator[dict[str, Any]]:
        cols = [table.c[c] for c in member.columns]
        for raw in member.rows():
            try:
                yield {c.name: from_json(v, c) for c, v in zip(cols, raw, strict=True)}
            except (ValueError, TypeError) as exc:
                raise SnapshotError(f"a value of table {table.name} is malformed: {exc}") from None

    worlds = metadata.tables["worlds"]
    (world_values,) = list(convert(worlds, snap.table("worlds")))  # counted: exactly one
    if world_values.get("id") != old_world_id:
        raise snap.fail("tables/worlds.json holds another world than the manifest names")
    height = _world_height(world_values.get("world_settings"))
    world_name = name if name is not None else str(world_values.get("name"))
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

    def apply_fks(table: Table, values: dict[str, Any]) -> None:
        for fk in table.foreign_keys:
            col = fk.parent.name
            mapping = remap.get((fk.column.table.name, fk.column.name))
            if mapping is not None and values.get(col) in mapping:
                values[col] = mapping[values[col]]

    def redact(table: Table, values: dict[str, Any]) -> None:
        # Never taken from the file, whatever it holds: a planted hash would be a password.
        for col, factory in REDACTED.get(table.name, {}).items():
            values.pop(col, None)
            if factory is not None:
                values[col] = factory()
        for col, fresh in REGENERATED.get(table.name, {}).items():
            if col in values:
                values[col] = fresh()

    for ref in plan.references:
        if ref.name not in present:
            continue
        pk = list(ref.primary_key.columns)
        for values in convert(ref, snap.table(ref.name)):
            apply_fks(ref, values)
            if ref.name == "users":
                match_id = _place_user(conn, ref, values, match_users_by_email=match_users_by_email)
            else:
                match = _existing_match(conn, ref, values)
                match_id = None if match is None else match[pk[0].name]
            if match_id is not None:
                if len(pk) == 1:
                    remap.setdefault((ref.name, pk[0].name), {})[values[pk[0].name]] = match_id
                continue
            redact(ref, values)
            conn.execute(insert(ref), [values])

    for table in plan.owned:
        if table.name not in present:
            continue
        pk = list(table.primary_key.columns)
        # A table's own ids get fresh values in a copy; a key that is a foreign key too
        # (block_state_tokens.world_id) follows its parent instead.
        own_ids = len(pk) == 1 and python_type(pk[0]) is uuid.UUID and not pk[0].foreign_keys
        mapping: dict[Any, Any] | None = None
        if table.name == "worlds" or (new_id and own_ids):
            mapping = remap.setdefault((table.name, pk[0].name), {})
        rows = [world_values] if table.name == "worlds" else convert(table, snap.table(table.name))
        batch: list[dict[str, Any]] = []
        for values in rows:
            if table.name == "worlds":
                values["name"] = world_name
            if mapping is not None:
                old = values[pk[0].name]
                if table.name != "worlds" or new_id:
                    mapping[old] = uuid.uuid4()
                values[pk[0].name] = mapping.get(old, old)
            apply_fks(table, values)
            redact(table, values)
            batch.append(values)
            if len(batch) >= BATCH:
                conn.execute(insert(table), batch)
                batch = []
        if batch:
            conn.execute(insert(table), batch)

    return remap.get(("worlds", "id"), {}).get(old_world_id, old_world_id), height


def _restore_chunks(
    conn: Connection,
    chunks: Table,
    snap: SnapshotReader,
    world_id: uuid.UUID,
    height: int,
    total: int,
    *,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[int, int]]:
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    keys: list[tuple[int, int]] = []
    done = 0
    stmt = insert(chunks)
    version = fresh_version()
    for cx, cz, _stored_version, data, meta in snap.chunk_records(height):
        # The file's checksums only say the bytes are the ones written: decode them.
        try:
            shape = decode_chunk(data).shape
        except (ChunkFormatError, ValueError) as exc:
            raise snap.fail(f"chunk ({cx}, {cz}) does not decode: {exc}") from None
        if shape != (height, 16, 16):
            raise snap.fail(f"chunk ({cx}, {cz}) is {shape[0]} blocks high, the world {height}")
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
        batch_bytes += len(data)
        if len(batch) >= BATCH or batch_bytes >= BATCH_BYTES:
            conn.execute(stmt, batch)
            done += len(batch)
            batch, batch_bytes = [], 0
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
