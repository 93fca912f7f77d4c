"""The hot path's transaction: a Connection, without the ORM session's bookkeeping.

The game's per-action services (``choose``, ``gain_experience``) run a few statements; an
ORM session of their own would cost more than the statements. So they run on a pooled
connection checked out for the call and returned when it ends: a connection kept per
thread would starve the pool once a server has more worker threads than pooled connections.

Three ways, one rule (a connection found broken before the COMMIT was sent is replaced and
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
- :func:`run_alone`: the same for work of autocommit statements only (a step or a gain on
  the character's hint: one statement), on the autocommit connections of the engine's read
  pool (``_engine.read_pool``), which hands one out in a few microseconds: the engine
  pool's checkout and return (wrapper, events, reset) were 50 us of a 450 us step.

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

from voxeldb._engine import read_pool
from voxeldb._settings import get_settings
from voxeldb.meta import get_engine

__all__ = ["SYNC_OFF", "Direct", "Hints", "direct_engine", "run_alone", "run_direct", "run_write"]

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

    def __init__(self, conn: Any, slow_ms: float, cursor: Any = None) -> None:
        self._conn = conn
        self._slow_ms = slow_ms
        # An autocommit connection's own cursor (``run_alone``): statements are only
        # ``alone``, and a cursor per statement is not made.
        self._cursor = cursor
        self.commit_sent = False
        self.statement: str | None = None
        self.params: Any = None

    def first(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row ``sql`` returns."""
        source = self._conn if self._cursor is None else self._cursor
        return self._timed(sql, params, lambda: source.execute(sql, params).fetchone())  # type: ignore[no-any-return]

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
        # A write that fails may have committed all the same: it is not run again.
        self.commit_sent = self.commit_sent or writes
        if self._cursor is not None:  # always in autocommit
            return self.first(sql, params)
        conn = self._conn
        conn.autocommit = True
        try:
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


def run_alone(engine: Engine, work: Callable[[Direct], T]) -> T:
    """``work(direct)`` whose statements are all :meth:`Direct.alone` (each committed by
    itself), on an autocommit connection of the engine's read pool (``_engine.ReadPool``):
    the checkout of the engine's pool (its wrapper, events and reset on return) cost more
    than a one-statement action's work. Same rule as :func:`run_direct` for a lost
    connection."""
    pool = read_pool(engine)
    fresh = [False]

    def checkout() -> tuple[Any, Direct, Callable[[bool], None]]:
        lease, _ = pool.acquire(fresh=fresh[0])
        fresh[0] = True  # a second attempt: a new connection

        def done(lost: bool) -> None:
            pool.release(lease)  # closed there unless it is idle and sound

        return lease.conn, Direct(lease.conn, _slow(engine), lease.cursor), done

    return _attempts(engine, work, checkout)


def run_direct(engine: Engine, work: Callable[[Direct], T]) -> T:
    """``work(direct)`` on a pooled connection; it ends with ``direct.commit()`` (what it
    leaves open is rolled back). Driver errors are raised as SQLAlchemy's."""

    def checkout() -> tuple[Any, Direct, Callable[[bool], None]]:
        fairy = engine.raw_connection()
        conn: Any = fairy.driver_connection

        def done(lost: bool) -> None:
            if lost:
                fairy.invalidate()
            # The pool rolls back what is left open, or discards a connection it cannot.
            fairy.close()

        return conn, Direct(conn, _slow(engine)), done

    return _attempts(engine, work, checkout)


def _slow(engine: Engine) -> float:
    slow_ms = _slow_ms.get(engine)
    if slow_ms is None:
        slow_ms = _slow_ms.setdefault(engine, get_settings().slow_query_ms)
    return slow_ms


def _attempts(
    engine: Engine,
    work: Callable[[Direct], T],
    checkout: Callable[[], tuple[Any, Direct, Callable[[bool], None]]],
) -> T:
    """``work`` on a connection from ``checkout`` (which also gives what hands it back),
    once more on another when it was lost before a COMMIT was sent; driver errors raised as
    SQLAlchemy's."""
    import psycopg

    for attempt in (1, 2):
        conn, direct, done = checkout()
        lost = False
        try:
            return work(direct)
        except psycopg.Error as exc:
            lost = engine.dialect.is_disconnect(cast(Any, exc), conn, None)
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
            done(lost)
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
