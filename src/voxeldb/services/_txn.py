"""The hot path's transaction: a Connection, without the ORM session's bookkeeping.

The game's per-action services (``choose``, ``gain_experience``, ``adjust_affinity``) run
a few Core statements; an ORM session of their own would cost more than the statements. On
a caller's session they run on its connection, in its transaction (pending ORM changes are
flushed first, so the statements see them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from voxeldb.meta import get_engine

__all__ = ["write_connection"]

_immediate: dict[int, tuple[Engine, Engine]] = {}


def _write_engine() -> Engine:
    """``get_engine()`` with BEGIN IMMEDIATE on SQLite (made once per engine)."""
    engine = get_engine()
    cached = _immediate.get(id(engine))
    if cached is None or cached[0] is not engine:
        cached = (engine, engine.execution_options(sqlite_begin="IMMEDIATE"))
        _immediate.clear()  # SessionLocal was pointed elsewhere: the old engine is gone
        _immediate[id(engine)] = cached
    return cached[1]


@contextlib.contextmanager
def write_connection(session: Session | None) -> Iterator[Connection]:
    """The caller's session's connection, or a write transaction of our own, committed on
    success (rolled back on error)."""
    if session is not None:
        session.flush()
        yield session.connection()
        return
    with _write_engine().begin() as conn:
        yield conn
