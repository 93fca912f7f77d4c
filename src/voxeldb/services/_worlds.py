"""Worlds, their settings and block edits through the ORM."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from voxeldb._retry import retry
from voxeldb.chunks import (
    INT32_MAX,
    INT32_MIN,
    check_compression,
    check_journal_actor,
    intern_states,
    world_compression,
)
from voxeldb.errors import (
    CoordinateError,
    OutsideWorldError,
    UnknownIdError,
    ValidationError,
    is_transient,
)
from voxeldb.meta import JOURNAL_ACTOR, World, WorldChunk
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._permissions import require_permission, user_id_of
from voxeldb.services._settings_cache import get_cache
from voxeldb.services._validation import WorldInput, WorldSettings

__all__ = [
    "create_world",
    "get_chunk",
    "get_world_settings",
    "set_block",
    "update_world_settings",
]


def _check_settings(settings: Any) -> dict[str, Any]:
    data = validated(WorldInput, name="x", settings=settings).settings
    checked = validated(WorldSettings, **data)
    codec = world_compression(data)
    # An unknown compressor must fail here, not at the first chunk written.
    check_compression(codec["compression"], codec["compression_level"])
    # Keep what the caller gave (extra keys included), with height/min_y filled in.
    return {**data, "height": checked.height, "min_y": checked.min_y}


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be an integer, got {value!r}", field=field)
    return value


def _chunk_coord(value: int, field: str, what: str) -> int:
    if not INT32_MIN <= value <= INT32_MAX:
        raise OutsideWorldError(
            f"{field}: {what} {value} is outside the chunk coordinate range "
            f"[{INT32_MIN}, {INT32_MAX}]",
            field=field,
        )
    return value


def _world(s: Session, world_id: uuid.UUID) -> World:
    world = s.get(World, world_id)
    if world is None:
        raise UnknownIdError(f"world_id: no world {world_id}", field="world_id")
    return world


def create_world(
    name: str,
    settings: dict[str, Any] | None = None,
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> World:
    """A new world; ``settings`` may set ``height`` (multiple of 16, ≤ 4096) and ``min_y``.

    With ``as_user`` (an active user), that user is its creator (``World.created_by``), who
    may then act on it and its stories."""
    data = validated(WorldInput, name=name, settings=settings if settings is not None else {})
    world_settings = _check_settings(data.settings)
    creator = None if as_user is None else user_id_of(as_user)
    with session_scope(session, write=True) as s:
        require_permission(s, as_user)
        if s.scalar(select(World.id).where(World.name == data.name)) is not None:
            raise ValidationError(f"name: a world named {data.name!r} exists", field="name")
        world = World(name=data.name, world_settings=world_settings, created_by=creator)
        s.add(world)
    return world


def update_world_settings(
    world_id: Any,
    settings: dict[str, Any],
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> World:
    """Replace a world's settings (validated as at creation); cached copies are dropped.

    ``height`` and ``min_y`` cannot change once chunks are stored: the stored arrays have
    the old shape. With ``as_user``, that user must have created the world.
    """
    wid = parse_id(world_id, "world_id")
    new = _check_settings(settings)
    with session_scope(session, write=True) as s:
        require_permission(s, as_user, world_id=wid)
        world = _world(s, wid)
        if (new["height"], new["min_y"]) != (world.height, world.min_y) and s.scalar(
            select(WorldChunk.chunk_x).where(WorldChunk.world_id == wid).limit(1)
        ) is not None:
            raise ValidationError(
                "settings: height and min_y cannot change in a world that has chunks",
                field="settings",
            )
        world.world_settings = new
        world.version = (world.version or 0) + 1
        get_cache().invalidate(wid)
        if session is not None:
            # The caller commits later: drop what a reader may have cached until then.
            event.listen(s, "after_commit", lambda _s: get_cache().invalidate(wid), once=True)
    # Once more after our commit: a reader between the two may have cached the old value.
    get_cache().invalidate(wid)
    return world


def get_world_settings(world_id: Any, *, session: Session | None = None) -> dict[str, Any]:
    """A world's settings (a copy), cached; an unknown world is an UnknownIdError."""
    wid = parse_id(world_id, "world_id")
    cache = get_cache()
    cached = cache.get(wid)
    if cached is not None:
        return cached
    with session_scope(session) as s:
        settings = s.scalar(select(World.world_settings).where(World.id == wid))
    if settings is None:
        raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
    if session is None:
        # A caller's session may see its own uncommitted settings: those are not cached.
        cache.put(wid, settings)
    return copy.deepcopy(settings)


def get_chunk(
    world_id: Any, x: int, y: int, z: int, *, session: Session | None = None
) -> WorldChunk | None:
    """The chunk at chunk coordinates ``(x, y, z)`` (``y`` is 0: chunks are columns), or None."""
    wid = parse_id(world_id, "world_id")
    cx, cy, cz = _int(x, "x"), _int(y, "y"), _int(z, "z")
    for value, field in ((cx, "x"), (cy, "y"), (cz, "z")):
        _chunk_coord(value, field, "chunk coordinate")
    with session_scope(session) as s:
        return s.scalar(
            select(WorldChunk).where(
                WorldChunk.world_id == wid,
                WorldChunk.chunk_x == cx,
                WorldChunk.chunk_y == cy,
                WorldChunk.chunk_z == cz,
            )
        )


def set_block(
    world_id: Any,
    x: int,
    y: int,
    z: int,
    block_data: str | dict[str, Any],
    *,
    session: Session | None = None,
    actor: str | None = None,
    as_user: Any = None,
) -> WorldChunk:
    """Set the block at world coordinates ``(x, y, z)``; a chunk not stored yet is created.

    The world journal records the change under ``actor`` (``"character:<id>"``,
    ``"agent:<id>"``, ...; at most 200 characters); with ``as_user`` (who must be allowed
    to edit the world) it defaults to ``"user:<id>"``.

    The chunk row gets a new version. Without ``session`` the chunk row is locked for the
    edit (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and what
    still conflicts (another writer creating the chunk first, a deadlock, a busy database)
    is retried by the one retry policy (``voxeldb._retry``), like the chunk store's edits.
    With a session, a concurrent write surfaces as SQLAlchemy's ``StaleDataError`` at the
    caller's flush or commit.
    """
    wid = parse_id(world_id, "world_id")
    bx, by, bz = _int(x, "x"), _int(y, "y"), _int(z, "z")
    cx = _chunk_coord(bx >> 4, "x", f"block x = {bx} is in chunk")
    cz = _chunk_coord(bz >> 4, "z", f"block z = {bz} is in chunk")
    lx, lz = bx & 15, bz & 15
    actor = _journal_actor(actor, as_user)
    if session is not None:
        with _acting(session, actor):
            require_permission(session, as_user, world_id=wid)
            return _set_block(session, wid, cx, cz, lx, by, lz, block_data, lock=False)

    def attempt() -> WorldChunk:
        with session_scope(None, write=True) as s, _acting(s, actor):
            require_permission(s, as_user, world_id=wid)
            return _set_block(s, wid, cx, cz, lx, by, lz, block_data, lock=True)

    return retry(
        attempt,
        # Another writer created the chunk first (primary key), changed it (version), or
        # a deadlock / busy database: the whole transaction is run again.
        transient=lambda exc: isinstance(exc, StaleDataError | IntegrityError) or is_transient(exc),
        what=f"set_block in chunk ({cx}, {cz})",
    )


def _journal_actor(actor: Any, as_user: Any) -> str | None:
    if actor is None and as_user is not None:
        actor = f"user:{user_id_of(as_user)}"
    try:
        return check_journal_actor(actor)
    except ValidationError as exc:
        raise ValidationError(str(exc), field="actor") from None


@contextlib.contextmanager
def _acting(s: Session, actor: str | None) -> Iterator[None]:
    """The session's chunk writes are journaled under ``actor`` while inside."""
    before = s.info.get(JOURNAL_ACTOR)
    s.info[JOURNAL_ACTOR] = actor
    try:
        yield
    finally:
        if before is None:
            s.info.pop(JOURNAL_ACTOR, None)
        else:
            s.info[JOURNAL_ACTOR] = before


def _set_block(
    s: Session,
    wid: uuid.UUID,
    cx: int,
    cz: int,
    lx: int,
    y: int,
    lz: int,
    block_data: str | dict[str, Any],
    *,
    lock: bool,
) -> WorldChunk:
    world = _world(s, wid)
    try:
        # The state first (it may take the registry's token row), then the chunk's row:
        # the chunk store's edits take them in this order too, so the two never deadlock.
        intern_states(s.connection(), wid, [block_data])
    except ValidationError as exc:
        raise ValidationError(f"block_data: {exc}", field="block_data") from None
    chunk = s.get(WorldChunk, (wid, cx, cz), with_for_update=lock or None)
    if chunk is None:
        chunk = WorldChunk(world=world, world_id=wid, chunk_x=cx, chunk_z=cz, chunk_y=0)
        s.add(chunk)
    # No flush of the half-built chunk (data still None) while the registry queries.
    with s.no_autoflush:
        try:
            chunk.set_block_at(lx, y, lz, block_data)
        except CoordinateError as exc:
            raise OutsideWorldError(f"y: {exc}", field="y") from None
        except ValidationError as exc:
            # The model calls it "state"; this function's argument is block_data.
            if exc.field != "state":
                raise
            raise ValidationError(f"block_data: {exc}", field="block_data") from None
    s.flush()
    return chunk
