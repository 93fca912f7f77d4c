"""The hot path's transaction: a Connection, without the ORM session's bookkeeping.

The game's per-action services (``choose``, ``gain_experience``) run a few Core statements;
an ORM session of their own, and a pool checkout with its liveness ping, would cost more
than the statements. So each thread keeps one connection of ``SessionLocal``'s engine for
them (:func:`run_write`), checked out while the thread lives; a connection found broken is
replaced and the work run again, as long as nothing was committed. On a caller's session
they run on its connection, in its transaction (pending ORM changes are flushed first, so
the statements see them).

Durability: a game action committed by voxeldb itself waits for its WAL record to reach the
disk, like every other write: nothing acknowledged is lost. A caller may pass
``durable=False`` (``synchronous_commit = off`` for that transaction only, PostgreSQL): a
crash of the database server may then lose the last few hundred milliseconds of choices and
experience, atomically, never a part of one. One commit waiting for the disk costs 2 to 4 ms
here, more than the whole action.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from voxeldb.meta import get_engine

__all__ = ["run_write"]

T = TypeVar("T")

_local = threading.local()


def _held(engine: Engine) -> Connection:
    held = getattr(_local, "held", None)
    if held is not None:
        owner, pid, conn = held
        if owner is engine and pid == os.getpid() and not conn.closed and not conn.invalidated:
            return conn  # type: ignore[no-any-return]
        _drop()
    conn = engine.execution_options(sqlite_begin="IMMEDIATE").connect()
    _local.held = (engine, os.getpid(), conn)
    return conn


def _drop() -> None:
    held = getattr(_local, "held", None)
    _local.held = None
    if held is not None and held[1] == os.getpid():
        with contextlib.suppress(Exception):
            held[2].close()


def run_write(
    session: Session | None, work: Callable[[Connection, bool], T], *, durable: bool = True
) -> T:
    """``work(conn, sync_off)`` in the caller's session's transaction, or in one of our own
    on the thread's connection, committed on success (rolled back on error).

    ``sync_off``: the work's first statement should set ``synchronous_commit`` off for the
    transaction (PostgreSQL, ``set_config(..., true)``: no round trip of its own); true for
    our own transactions unless ``durable``."""
    if session is not None:
        session.flush()
        return work(session.connection(), False)
    for attempt in (1, 2):
        conn = _held(get_engine())
        try:
            trans = conn.begin()
        except DBAPIError as exc:
            if exc.connection_invalidated and attempt == 1:
                _drop()
                continue
            raise
        try:
            result = work(conn, not durable)
        except DBAPIError as exc:
            with contextlib.suppress(Exception):
                trans.rollback()
            if exc.connection_invalidated and attempt == 1:
                _drop()  # lost before anything was committed: run it again
                continue
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                trans.rollback()
            raise
        trans.commit()
        return result
    raise AssertionError("unreachable")  # pragma: no cover
