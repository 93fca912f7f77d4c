"""World lookup: the world an operator or a command names, by its name or by its id."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from voxeldb.chunks import world_shape
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import World
from voxeldb.services._common import session_scope

__all__ = ["SessionSource", "WorldRef", "resolve_world"]


class SessionSource(Protocol):
    """Anything that opens ORM sessions the way ``voxeldb.Database.session()`` does."""

    def session(self) -> AbstractContextManager[Session]: ...


@dataclass(frozen=True)
class WorldRef:
    """A world's id, name and settings, detached from any session."""

    id: uuid.UUID
    name: str
    settings: dict[str, Any]

    @property
    def height(self) -> int:
        return world_shape(self.settings)[0]

    @property
    def min_y(self) -> int:
        return world_shape(self.settings)[1]


@contextlib.contextmanager
def _session(db: SessionSource | None, session: Session | None) -> Iterator[Session]:
    if session is None and db is not None:
        with db.session() as own:
            yield own
    else:
        with session_scope(session) as chosen:
            yield chosen


def _has_worlds_table(session: Session) -> bool:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    return inspect(engine).has_table(World.__tablename__)


def resolve_world(
    db: SessionSource | None, ref: str | uuid.UUID, *, session: Session | None = None
) -> WorldRef:
    """The world whose id is ``ref``, else the one named ``ref``.

    Sessions come from ``session``, else from ``db`` (a :class:`voxeldb.Database`), else from
    ``SessionLocal``. Raises :class:`~voxeldb.errors.NotFoundError` naming ``ref`` when no world
    matches (saying so when the database has no voxeldb schema yet), and
    :class:`~voxeldb.errors.ValidationError` for an empty ``ref``.
    """
    text_ref = str(ref).strip()
    if not text_ref:
        raise ValidationError("the world name or id is empty", field="world")
    world_id: uuid.UUID | None = None
    with contextlib.suppress(ValueError):
        world_id = uuid.UUID(text_ref)
    with _session(db, session) as s:
        try:
            world = s.get(World, world_id) if world_id is not None else None
            if world is None:
                world = s.scalars(select(World).where(World.name == text_ref)).first()
        except DBAPIError:
            if not _has_worlds_table(s):
                raise NotFoundError(
                    f"no world {text_ref!r}: the database has no voxeldb schema yet "
                    "(run `voxeldb setup --create-tables`)"
                ) from None
            raise
        if world is None:
            raise NotFoundError(f"no world named or with id {text_ref!r}")
        return WorldRef(world.id, world.name, dict(world.world_settings or {}))
