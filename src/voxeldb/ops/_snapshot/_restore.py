"""Restoring a world snapshot: one transaction, every member checked, fresh chunk versions.

Why over 500 lines: every step below runs inside one transaction and shares its streaming
state (the member bounds, the id maps, the user matching, an increment's base check);
splitting it would thread that state through every call. Candidates to move out next: the
user matching and the increment rules.

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

An increment (``_archive.INCREMENT_FORMAT``) is applied on top of a world restored earlier
(:func:`_restore_increment`): the restore of a file that records its journal head leaves a
marker in the world's settings (:data:`BASE_KEY`: the source world, the source journal head
the world now holds, and the world's own journal head right after the restore), and an
increment is refused unless it continues exactly what the marker says and the world has not
been written since (docs/operations.md, "Incremental backups").

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

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError

from voxeldb._ids import fresh_version
from voxeldb.chunks import (
    MAX_HEIGHT,
    decode_chunk,
    journal_deletes,
    journal_head,
    journal_puts,
    world_shape,
)
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

__all__ = ["BASE_KEY", "RESTORE_ACTOR", "restore_world_snapshot"]

RESTORE_ACTOR = "snapshot restore"
"""The actor a restore's chunk writes are journaled under (CONTRACT §7: a restore journals)."""

BASE_KEY = "snapshot_base"
"""The key of a restored world's settings recording what it was restored from:
``{"world": <source world id>, "head": <source journal head held>, "local_head": <this
world's journal head after the restore>}``."""


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
        if snap.increment is not None:
            if new_id:
                raise SnapshotError(
                    f"snapshot {snap.path} is an increment: it applies to the world restored "
                    "before (name=... / --as-name picks it), never as a new copy (new_id)"
                )
            return _restore_increment(
                engine,
                metadata,
                plan,
                snap,
                old_world_id,
                name=name,
                progress=progress,
                restored_keys=restored_keys,
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
                    journal = manifest.get("journal")
                    head = None if journal is None else journal["head"]
                    _mark_base(conn, metadata, world_id, old_world_id, head)
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
    replace: bool = False,
) -> list[tuple[int, int]]:
    """Insert the file's chunks under one fresh version (``replace``: chunks stored under the
    same keys are deleted first, batch by batch); returns their keys."""
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
            if replace:
                _delete_keys(conn, chunks, world_id, batch)
            conn.execute(stmt, batch)
            _journal_batch(conn, world_id, batch)
            done += len(batch)
            batch, batch_bytes = [], 0
            if progress is not None:
                progress(done, total)
    if batch:
        if replace:
            _delete_keys(conn, chunks, world_id, batch)
        conn.execute(stmt, batch)
        _journal_batch(conn, world_id, batch)
        done += len(batch)
    if done != total:
        raise snap.fail(f"{CHUNKS_MEMBER} holds {done} chunks, the manifest says {total}")
    if progress is not None:
        progress(done, total)
    return keys


def _mark_base(
    conn: Connection,
    metadata: MetaData,
    world_id: uuid.UUID,
    source: uuid.UUID,
    head: int | None,
) -> None:
    """Record in the world's settings that it holds world ``source`` up to journal seq
    ``head``, and its own journal head now (inside the restore's transaction). A file that
    records no head (made before increments) leaves no marker: a marker the file's settings
    carry from an earlier restore elsewhere is dropped."""
    worlds = metadata.tables["worlds"]
    settings = dict(
        conn.execute(select(worlds.c.world_settings).where(worlds.c.id == world_id)).scalar_one()
        or {}
    )
    settings.pop(BASE_KEY, None)
    if head is not None:
        local = journal_head(conn, world_id)
        settings[BASE_KEY] = {"world": str(source), "head": head, "local_head": local}
    conn.execute(update(worlds).where(worlds.c.id == world_id).values(world_settings=settings))


def _restore_increment(
    engine: Engine,
    metadata: MetaData,
    plan: Plan,
    snap: SnapshotReader,
    source: uuid.UUID,
    *,
    name: str | None,
    progress: Callable[[int, int], None] | None,
    restored_keys: list[tuple[int, int]] | None,
) -> uuid.UUID:
    """Apply the increment ``snap`` to the world restored from ``source`` before (the world
    of that id, or the one named ``name``), in one transaction; returns the world's id."""
    increment = snap.increment
    assert increment is not None
    since, head = increment["since"], increment["head"]
    worlds = metadata.tables["worlds"]
    total: int = snap.manifest["counts"]["world_chunks"]
    (world_row,) = list(snap.table("worlds").rows())  # counted: exactly one; checks the member
    if str(source) not in world_row:
        raise snap.fail("tables/worlds.json holds another world than the manifest names")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                where = worlds.c.name == name if name is not None else worlds.c.id == source
                row = conn.execute(
                    select(worlds.c.id, worlds.c.name, worlds.c.world_settings).where(where)
                ).first()
                what = f"world {snap.manifest['world']['name']!r} ({source})"
                if row is None:
                    target = repr(name) if name is not None else f"with id {source}"
                    raise SnapshotError(
                        f"snapshot {snap.path} is an increment of {what} (journal seq {since + 1} "
                        f"to {head}); the target has no world {target}: restore the full "
                        "snapshot first, then the increments in order"
                    )
                world_id, world_name, settings = row
                settings = dict(settings or {})
                height = _world_height(settings)
                if snap.manifest["world"].get("height", height) != height:
                    raise SnapshotError(
                        f"snapshot {snap.path}: the world is {snap.manifest['world']['height']} "
                        f"blocks high in the increment, {height} on the target"
                    )
                _check_base(snap, settings.get(BASE_KEY), source, what, world_name, since, head)
                local = journal_head(conn, world_id)
                if local != settings[BASE_KEY].get("local_head"):
                    raise SnapshotError(
                        f"cannot apply increment {snap.path}: world {world_name!r} was written on "
                        f"the target after its last restore (its journal is at seq {local}, the "
                        f"restore left it at {settings[BASE_KEY].get('local_head')}); increments "
                        "apply only to an untouched restore: restore the full snapshot again "
                        "(under another name) and the increments on top"
                    )
                _merge_registry(conn, metadata, snap, world_id)
                keys = _restore_chunks(
                    conn,
                    plan.chunks,
                    snap,
                    world_id,
                    height,
                    total,
                    progress=progress,
                    replace=True,
                )
                gone = snap.deleted_chunks()
                c = plan.chunks.c
                for i in range(0, len(gone), BATCH):
                    conn.execute(
                        delete(plan.chunks).where(
                            c.world_id == world_id,
                            tuple_(c.chunk_x, c.chunk_z).in_(gone[i : i + BATCH]),
                        )
                    )
                journal_deletes(conn, world_id, gone, actor=RESTORE_ACTOR)
                _mark_base(conn, metadata, world_id, source, head)
    except IntegrityError as exc:
        raise SnapshotError(
            f"cannot apply increment {snap.path}: its rows conflict with the target's "
            f"({_first_line(exc)})"
        ) from None
    if restored_keys is not None:
        restored_keys.extend(keys)
        restored_keys.extend(gone)
    return uuid.UUID(str(world_id))


def _check_base(
    snap: SnapshotReader,
    base: Any,
    source: uuid.UUID,
    what: str,
    world_name: str,
    since: int,
    head: int,
) -> None:
    """Refuse an increment that does not continue what the target world holds."""
    if not isinstance(base, dict) or base.get("world") != str(source):
        raise SnapshotError(
            f"cannot apply increment {snap.path}: world {world_name!r} on the target was not "
            f"restored from a snapshot of {what}; an increment applies only on top of a "
            "restore of that world's full snapshot (and the increments before it)"
        )
    held = base.get("head")
    if isinstance(held, bool) or not isinstance(held, int):
        raise SnapshotError(f"world {world_name!r}: its {BASE_KEY} setting is malformed")
    if held < since:
        raise SnapshotError(
            f"cannot apply increment {snap.path}: it holds the changes after journal seq "
            f"{since}, but world {world_name!r} holds {what} only up to seq {held}: apply the "
            f"increment(s) covering seq {held + 1} to {since} first"
        )
    if held > head:
        raise SnapshotError(
            f"cannot apply increment {snap.path}: world {world_name!r} holds {what} up to "
            f"journal seq {held} already, past this increment's end ({head}): it would go back "
            "in time"
        )


def _merge_registry(
    conn: Connection, metadata: MetaData, snap: SnapshotReader, world_id: Any
) -> None:
    """Add the increment's block states the target's registry lacks; an id that names
    another state on the target means another history: refused."""
    states = metadata.tables["block_states"]
    member = snap.table("block_states")
    cols = [states.c[name] for name in member.columns]
    known = {
        int(sid): key
        for sid, key in conn.execute(
            select(states.c.state_id, states.c.state_key).where(states.c.world_id == world_id)
        )
    }
    added: list[dict[str, Any]] = []
    for raw in member.rows():
        values = {c.name: from_json(v, c) for c, v in zip(cols, raw, strict=True)}
        sid, key = int(values["state_id"]), values["state_key"]
        if sid in known:
            if known[sid] != key:
                raise SnapshotError(
                    f"cannot apply increment {snap.path}: block state {sid} is {key!r} in the "
                    f"increment but {known[sid]!r} on the target: the target does not hold the "
                    "history this increment continues"
                )
            continue
        values["world_id"] = world_id
        added.append(values)
    if not added:
        return
    for i in range(0, len(added), BATCH):
        conn.execute(insert(states), added[i : i + BATCH])
    tokens = metadata.tables["block_state_tokens"]
    # New states: a fresh registry token drops every process's memo of the old registry.
    conn.execute(delete(tokens).where(tokens.c.world_id == world_id))
    conn.execute(insert(tokens), [{"world_id": world_id, "token": fresh_version()}])


def _delete_keys(
    conn: Connection, chunks: Table, world_id: Any, batch: list[dict[str, Any]]
) -> None:
    c = chunks.c
    keys = [(r["chunk_x"], r["chunk_z"]) for r in batch]
    conn.execute(
        delete(chunks).where(c.world_id == world_id, tuple_(c.chunk_x, c.chunk_z).in_(keys))
    )


def _journal_batch(conn: Connection, world_id: uuid.UUID, batch: list[dict[str, Any]]) -> None:
    """Journal a batch of restored chunks as puts, in the restore's transaction."""
    journal_puts(
        conn,
        world_id,
        [(r["chunk_x"], r["chunk_z"], r["version"], r["data"]) for r in batch],
        actor=RESTORE_ACTOR,
    )
