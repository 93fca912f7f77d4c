"""``SessionLocal``: the seed's session factory, bound lazily to ``DATABASE_URL``."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from voxeldb._engine import make_engine

__all__ = ["SessionLocal", "configure", "get_engine", "write_lock"]

_lock = threading.Lock()
_engine: Engine | None = None
_url: str | URL | None = None


def get_engine() -> Engine:
    """The engine ``SessionLocal`` uses: made on first use, from ``configure``'s URL or the settings."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = make_engine(_url)
        return _engine


def configure(url: str | URL | None = None) -> None:
    """Point ``SessionLocal`` at ``url`` (``None``: read ``DATABASE_URL`` again on next use).

    The previous engine's pooled connections are closed.
    """
    global _engine, _url
    with _lock:
        old, _engine, _url = _engine, None, url
    if old is not None:
        old.dispose()


class _LazySessionMaker(sessionmaker[Session]):
    """A ``sessionmaker`` whose engine is made when the first session is, not at import."""

    def __call__(self, **local_kw: Any) -> Session:
        if local_kw.get("bind") is None and self.kw.get("bind") is None:
            local_kw["bind"] = get_engine()
        return super().__call__(**local_kw)


# Objects stay readable after their session commits and closes, as the seed's examples
# expect (they return the object from inside ``with SessionLocal() as session``).
SessionLocal: sessionmaker[Session] = _LazySessionMaker(expire_on_commit=False)


# --- SQLite: a session that writes holds the write lock from its first flush -------------
#
# A session's transaction on SQLite begins DEFERRED (reads never wait, WAL). When a second
# session had read a row, and a first one then wrote and committed it, the second one's
# first write used to fail at once with "database is locked": in WAL mode a transaction
# whose snapshot is older than the last commit can never become a writer, and SQLite does
# not wait (no busy handler) for that case. So, before the first flush that writes, a
# session whose transaction has written nothing yet trades its read snapshot for a write
# transaction (COMMIT of nothing, then BEGIN IMMEDIATE): that waits, up to the busy
# timeout (30 s), for the other writer instead of failing, and then sees its commit. The
# flush that follows is what it would be on PostgreSQL: a versioned row (WorldChunk)
# changed meanwhile is a StaleDataError, any other row is written over.

_SQLITE_TX = "voxeldb_sqlite_tx"
"""``session.info`` key: ``(holds the write lock, connection's total_changes at begin)``."""


@event.listens_for(Session, "after_begin")
def _sqlite_after_begin(session: Session, _tx: SessionTransaction, conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        session.info.pop(_SQLITE_TX, None)
        return
    immediate = conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE"
    dbapi: Any = conn.connection.dbapi_connection
    session.info[_SQLITE_TX] = (immediate, dbapi.total_changes)


@event.listens_for(Session, "before_flush")
def _sqlite_before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    state = session.info.get(_SQLITE_TX)
    if state is None or state[0]:
        return
    if session.new or session.dirty or session.deleted:
        write_lock(session)


def write_lock(session: Session) -> None:
    """Make ``session``'s transaction hold SQLite's write lock from now on (no-op elsewhere).

    For read-modify-write work on a caller's session: rows read after this call cannot be
    changed by another writer before this transaction ends. If the transaction has written
    nothing yet, its read snapshot is given up (objects read before may be stale: read them
    again) and a write transaction begun, waiting up to the busy timeout for other writers.
    On PostgreSQL, lock the rows themselves (``SELECT ... FOR UPDATE``).
    """
    conn = session.connection()
    state = session.info.get(_SQLITE_TX)
    if conn.dialect.name != "sqlite" or state is None or state[0]:
        return
    dbapi: Any = conn.connection.dbapi_connection
    if dbapi.total_changes == state[1] and dbapi.in_transaction:
        dbapi.execute("COMMIT")
        dbapi.execute("BEGIN IMMEDIATE")
    # Either just taken, or the transaction has written and so holds it already.
    session.info[_SQLITE_TX] = (True, state[1])
