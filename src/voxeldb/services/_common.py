"""What every service shares: session handling, id parsing and pydantic-to-voxeldb errors."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import pydantic
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from voxeldb._ids import as_uuid
from voxeldb.errors import ValidationError
from voxeldb.meta import SessionLocal, get_engine

__all__ = [
    "parse_id",
    "session_scope",
    "validated",
]

M = TypeVar("M", bound=pydantic.BaseModel)


def parse_id(value: Any, field: str) -> uuid.UUID:
    """``value`` (a UUID or its string form) as a UUID; anything else names ``field``."""
    return as_uuid(value, field)


def validated(model: type[M], **values: Any) -> M:
    """``model(**values)``, with pydantic's error turned into one naming the first bad field.

    ``field`` is the argument's name; where inside it (a dict key, a list index) goes in the
    message, escaped: hostile keys (lone surrogates) must not make the message unprintable.
    """
    try:
        return model(**values)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        field = loc[0] if loc else model.__name__
        where = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
        message = f"{field}{where}: {first['msg']}"
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        raise ValidationError(message, field=field) from None


@contextlib.contextmanager
def session_scope(session: Session | None, *, write: bool = False) -> Iterator[Session]:
    """The caller's session as it is, or a session of our own committed on success.

    A caller's session is flushed (so errors surface here) but never committed. Our own
    session is a write transaction from the start on SQLite when ``write`` (BEGIN IMMEDIATE:
    a read-then-write cannot deadlock against another writer), and the objects it loaded
    stay readable after it closes.
    """
    if session is not None:
        yield session
        session.flush()
        return
    bind = get_engine()
    if write:
        bind = bind.execution_options(sqlite_begin="IMMEDIATE")
    own = SessionLocal(bind=bind)
    try:
        yield own
        own.commit()
        # Server-side values set by an UPDATE (updated_at, ...) were expired by the flush:
        # load them now, while a session is still there to load them.
        for obj in list(own.identity_map.values()):
            if inspect(obj).expired_attributes:
                own.refresh(obj)
    except BaseException:
        own.rollback()
        raise
    finally:
        own.close()
