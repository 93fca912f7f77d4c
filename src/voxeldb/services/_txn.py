"""The hot path's transaction: a Connection, without the ORM session's bookkeeping.

The game's per-action services (``choose``, ``gain_experience``) run a few Core statements;
an ORM session of their own would cost more than the statements. So they run on a pooled
connection checked out for the call and returned when it ends (:func:`run_write`): a
connection kept per thread would starve the pool once a server has more worker threads
than pooled connections. A connection found broken before anything was committed is
replaced and the work run again. On a caller's session they run on its connection, in its
transaction (pending ORM changes are flushed first, so the statements see them).

Durability: a game action committed by voxeldb itself waits for its WAL record to reach the
disk, like every other write: nothing acknowledged is lost. A caller may pass
``durable=False`` (``synchronous_commit = off`` for that transaction only, PostgreSQL): a
crash of the database server may then lose the last few hundred milliseconds of choices and
experience, atomically, never a part of one. One commit waiting for the disk costs 2 to 4 ms
here, more than the whole action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from voxeldb.meta import get_engine

__all__ = ["run_write"]

T = TypeVar("T")


def run_write(
    session: Session | None, work: Callable[[Connection, bool], T], *, durable: bool = True
) -> T:
    """``work(conn, sync_off)`` in the caller's session's transaction, or in one of our own
    on a pooled connection, committed on success (rolled back on error).

    ``sync_off``: the work's first statement should set ``synchronous_commit`` off for the
    transaction (PostgreSQL, ``set_config(..., true)``: no round trip of its own); true for
    our own transactions unless ``durable``."""
    if session is not None:
        session.flush()
        return work(session.connection(), False)
    engine = get_engine().execution_options(sqlite_begin="IMMEDIATE")
    for attempt in (1, 2):
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                result = work(conn, not durable)
            except DBAPIError as exc:
                trans.rollback()
                if exc.connection_invalidated and attempt == 1:
                    continue  # lost before the commit was sent: run it again
                raise
            except BaseException:
                trans.rollback()
                raise
            # A failed COMMIT is not retried: it may have reached the server.
            trans.commit()
            return result
    raise AssertionError("unreachable")  # pragma: no cover
