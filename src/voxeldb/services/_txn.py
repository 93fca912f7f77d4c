"""The hot path's transaction: a Connection, without the ORM session's bookkeeping.

The game's per-action services (``choose``, ``gain_experience``) run a few statements; an
ORM session of their own would cost more than the statements. So they run on a pooled
connection checked out for the call and returned when it ends: a connection kept per
thread would starve the pool once a server has more worker threads than pooled connections.

Two ways, one rule (a connection found broken before the COMMIT was sent is replaced and
the work run again; a failed COMMIT is not retried, it may have reached the server):

- :func:`run_write`: SQLAlchemy Core on the pool's Connection, in the caller's session's
  transaction when one is given (pending ORM changes are flushed first), else in one of our
  own. Both backends.
- :func:`run_direct`: PostgreSQL through psycopg itself, on a pooled connection
  (:class:`Direct`): a transaction, or statements each committed alone (autocommit: one
  round trip, no ``BEGIN`` or ``COMMIT``). A SQLAlchemy ``execute`` costs about 70 us of CPU
  on top of its round trip, most of an action's time; a loopback round trip about 30.
  (psycopg's pipeline mode, which would save the round trip of ``BEGIN``, costs more CPU
  than it saves here.) Driver errors still arrive as SQLAlchemy's exceptions
  (``DBAPIError.instance``), and slow statements still go to the ``voxeldb.slow_query`` log.

Durability: a game action committed by voxeldb itself waits for its WAL record to reach the
disk, like every other write: nothing acknowledged is lost. A caller may pass
``durable=False`` (``synchronous_commit = off`` for that transaction only, PostgreSQL): a
crash of the database server may then lose the last few hundred milliseconds of choices and
experience, atomically, never a part of one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from voxeldb._settings import get_settings
from voxeldb.meta import get_engine

__all__ = ["SYNC_OFF", "Direct", "Hints", "direct_engine", "run_direct", "run_write"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

SYNC_OFF = "set_config('synchronous_commit', 'off', true)"
"""A select-list item that lets this transaction's commit skip waiting for the disk (no
round trip of its own: it rides on the first statement)."""

_slow_log = logging.getLogger("voxeldb.slow_query")
_slow_ms: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


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


def direct_engine(session: Session | None) -> Engine | None:
    """The engine to :func:`run_direct` on, or None where it does not apply (a caller's
    session, SQLite, a driver other than psycopg)."""
    if session is not None:
        return None
    engine = get_engine()
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    if _hints_engine[0] is not engine:
        _switch_to(engine)
    return engine


# Hints are about one database: another engine (``configure``) starts with none. The engine
# itself is kept, not its id, which a later engine may be given once this one is gone.
_hints_engine: list[Any] = [None]
_all_hints: weakref.WeakSet[Hints[Any, Any]] = weakref.WeakSet()


def _switch_to(engine: Engine) -> None:
    for hints in list(_all_hints):
        hints.clear()
    _hints_engine[0] = engine


class Direct:
    """A pooled psycopg connection: one transaction (psycopg sends ``BEGIN`` itself), or
    statements that are each a transaction (:meth:`alone`)."""

    def __init__(self, conn: Any, slow_ms: float) -> None:
        self._conn = conn
        self._slow_ms = slow_ms
        self.commit_sent = False
        self.statement: str | None = None
        self.params: Any = None

    def first(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row ``sql`` returns."""
        return self._timed(sql, params, lambda: self._conn.execute(sql, params).fetchone())  # type: ignore[no-any-return]

    def execute(self, sql: str, params: Mapping[str, Any]) -> None:
        self._timed(sql, params, lambda: self._conn.execute(sql, params))

    def commit(self) -> None:
        self.commit_sent = True
        self._timed("COMMIT", None, self._conn.commit)

    def alone(
        self, sql: str, params: Mapping[str, Any], *, writes: bool = True
    ) -> tuple[Any, ...] | None:
        """``sql`` as a transaction of its own (autocommit: one round trip, no ``BEGIN`` or
        ``COMMIT``), committed when it returns; its first row. Not inside a transaction."""
        conn = self._conn
        conn.autocommit = True
        try:
            # A write that fails may have committed all the same: it is not run again.
            self.commit_sent = self.commit_sent or writes
            return self.first(sql, params)
        finally:
            with contextlib.suppress(Exception):  # a broken connection: the pool discards it
                conn.autocommit = False

    def _timed(self, sql: str, params: Any, run: Callable[[], T]) -> T:
        self.statement, self.params = sql, params
        start = time.perf_counter()
        result = run()
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if elapsed_ms > self._slow_ms:
            _slow_log.warning("Slow query: %.1f ms - %s", elapsed_ms, " ".join(sql.split())[:200])
        return result


def run_direct(engine: Engine, work: Callable[[Direct], T]) -> T:
    """``work(direct)`` on a pooled connection; it ends with ``direct.commit()`` (what it
    leaves open is rolled back). Driver errors are raised as SQLAlchemy's."""
    import psycopg

    slow_ms = _slow_ms.get(engine)
    if slow_ms is None:
        slow_ms = _slow_ms.setdefault(engine, get_settings().slow_query_ms)
    for attempt in (1, 2):
        fairy = engine.raw_connection()
        conn: Any = fairy.driver_connection
        direct = Direct(conn, slow_ms)
        try:
            return work(direct)
        except psycopg.Error as exc:
            lost = engine.dialect.is_disconnect(cast(Any, exc), conn, None)
            if lost:
                fairy.invalidate(exc)
            if lost and attempt == 1 and not direct.commit_sent:
                continue  # nothing was committed: run it again on another connection
            raise DBAPIError.instance(
                direct.statement,
                direct.params,
                exc,
                psycopg.Error,
                connection_invalidated=lost,
                dialect=engine.dialect,
            ) from exc
        finally:
            # The pool rolls back what is left open, or discards a connection it cannot.
            fairy.close()
    raise AssertionError("unreachable")  # pragma: no cover


class Hints(Generic[K, V]):
    """What the last call on a key saw, for the next call to assume and check in SQL (a
    hint, never trusted): the newest ``size`` keys, the oldest dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()
        _all_hints.add(self)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items.pop(key, None)
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
