"""Engine construction shared by ``voxeldb.connect``, ``voxeldb.meta.SessionLocal`` and the CLI.

One place decides the driver (psycopg 3), the pool, SQLite's pragmas and slow-query logging,
and keeps the chunk store's read pool (:func:`read_pool`) beside each PostgreSQL engine's own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from voxeldb._settings import Settings, get_settings
from voxeldb.errors import ConfigurationError

__all__ = [
    "PooledRead",
    "ReadPool",
    "install_slow_query_log",
    "make_engine",
    "normalize_url",
    "read_pool",
    "require_database_file",
]

slow_log = logging.getLogger("voxeldb.slow_query")


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a driverless ``postgresql://`` (as in the seed's .env) means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL {str(url)!r}: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r} in {parsed.render_as_string()!r}: "
            "voxeldb runs on PostgreSQL (postgresql+psycopg://...) or SQLite (sqlite:///file)"
        )
    return parsed


def require_database_file(url: str | URL) -> None:
    """Refuse a SQLite URL whose file does not exist: connecting would create an empty one.

    For the commands that need an existing database (a typo in the URL must not leave an
    empty file behind); PostgreSQL URLs, in-memory and ``file:`` URI databases pass.
    """
    parsed = normalize_url(url)
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).expanduser().exists()
    ):
        raise ConfigurationError(
            f"SQLite file {database} does not exist (a typo in the database URL? "
            "`voxeldb setup` or `voxeldb generate` create a database)"
        )


def make_engine(url: str | URL | None = None, settings: Settings | None = None) -> Engine:
    """An engine for ``url`` (default: the settings' ``DATABASE_URL``), configured for voxeldb."""
    settings = settings or get_settings()
    parsed = normalize_url(url if url is not None else settings.database_url)
    kwargs: dict[str, Any] = {"echo": settings.echo_sql}
    if parsed.get_backend_name() == "postgresql":
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            # No SELECT 1 round trip per checkout: _check_alive looks at the socket instead.
            pool_pre_ping=False,
            pool_recycle=settings.pool_recycle_seconds,
            connect_args={"connect_timeout": 10},
        )
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "checkout", _check_alive)
    else:
        # Writers wait for SQLite's lock instead of failing at once; the store's own
        # transactions begin with BEGIN IMMEDIATE (see voxeldb.chunks) so waits are short.
        kwargs["connect_args"] = {"timeout": 30.0}
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
    install_slow_query_log(engine, settings.slow_query_ms)
    install_transaction_scope(engine)
    return engine


# --- connection info that lives as long as a transaction ---------------------------------

TRANSACTION_SCOPED: set[str] = set()
"""``Connection.info`` keys forgotten when a transaction begins, commits or rolls back (a
package adds its own at import: the block-state registry's ids of uncommitted rows)."""
SAVEPOINT_SCOPED: set[str] = set()
"""Keys also forgotten when a savepoint rolls back."""


def _forget(keys: set[str], conn: Any) -> None:
    try:
        info = conn.info
    except Exception:  # an invalidated connection (lost server): nothing to forget
        return
    for key in keys:
        info.pop(key, None)


def _end_transaction(conn: Any, *_args: Any) -> None:
    _forget(TRANSACTION_SCOPED, conn)


def _end_savepoint(conn: Any, *_args: Any) -> None:
    _forget(SAVEPOINT_SCOPED, conn)


_SCOPE_LOCK = threading.Lock()


def install_transaction_scope(engine: Engine) -> None:
    """Make ``engine`` forget :data:`TRANSACTION_SCOPED` keys at every transaction's end
    (idempotent). Engines voxeldb makes get it when they are made: a listener added while
    other threads run transactions on the engine breaks their event dispatch ("deque
    mutated during iteration")."""
    if event.contains(engine, "begin", _end_transaction):
        return
    with _SCOPE_LOCK:
        if event.contains(engine, "begin", _end_transaction):
            return
        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, _end_transaction)
        event.listen(engine, "rollback_savepoint", _end_savepoint)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is turned off so that BEGIN is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-modify-write asks for execution_options(sqlite_begin="IMMEDIATE"): the write
        # lock is then taken at BEGIN, so two writers cannot both read the old row. Plain
        # reads stay DEFERRED and never wait for writers (WAL).
        immediate = conn.get_execution_options().get("sqlite_begin", "DEFERRED") == "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if immediate else 'DEFERRED'}")
        conn.info[_SQLITE_TX] = [immediate, conn.connection.dbapi_connection.total_changes]

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        tx = conn.info.get(_SQLITE_TX)
        if tx is not None and not tx[0] and _SQLITE_WRITE.match(statement):
            sqlite_write_lock(conn)


_SQLITE_TX = "voxeldb_sqlite_tx"
"""``Connection.info`` key: ``[holds the write lock, total_changes at BEGIN]``."""
_SQLITE_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def sqlite_write_lock(conn: Any) -> None:
    """Make a SQLite connection's transaction hold the write lock from now on (no-op on
    other databases, and when it holds it already).

    A DEFERRED transaction whose snapshot is older than another writer's commit can never
    write: SQLite answers "database is locked" at once, without waiting (no busy handler
    for that case). So a transaction that has written nothing yet gives up its read
    snapshot here (COMMIT of nothing) and begins again with BEGIN IMMEDIATE, which waits up
    to the busy timeout for other writers and then sees their commits: what a transaction
    on PostgreSQL (READ COMMITTED) would see. Called before the first write of every
    transaction; a read-modify-write calls it before its reads.
    """
    if conn.dialect.name != "sqlite":
        return
    tx = conn.info.get(_SQLITE_TX)
    if tx is None or tx[0]:
        return
    dbapi = conn.connection.dbapi_connection
    # Not inside a SAVEPOINT: the COMMIT would end it under SQLAlchemy's feet.
    if dbapi.in_transaction and dbapi.total_changes == tx[1] and not conn.in_nested_transaction():
        dbapi.execute("COMMIT")
        dbapi.execute("BEGIN IMMEDIATE")
    tx[0] = True  # taken now, or held already since the transaction has written


def install_slow_query_log(engine: Engine, threshold_ms: float) -> None:
    """Log a warning on ``voxeldb.slow_query`` for every statement slower than ``threshold_ms``."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        conn.info.setdefault("voxeldb_query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        starts = conn.info.get("voxeldb_query_start")
        if not starts:
            return
        elapsed_ms = (time.perf_counter() - starts.pop()) * 1000.0
        if elapsed_ms > threshold_ms:
            slow_log.warning(
                "Slow query: %.1f ms - %s", elapsed_ms, " ".join(statement.split())[:200]
            )


# --- PostgreSQL: liveness without a round trip, and the chunk store's read pool -----------


def connection_alive(dbapi_conn: Any, poller: Any = None) -> bool:
    """Whether a pooled psycopg connection is still usable, mostly without a round trip.

    An idle connection has nothing to read. When the server goes away (a restart, an idle
    timeout, ``pg_terminate_backend``) it sends a FATAL error and closes the socket, so the
    socket turns readable: only then is the server asked (``SELECT 1``). A peer that vanished
    without a word is not seen here; the reads retry once for that (``Backend.read``).
    ``poller``: a ``select.poll`` object already watching the connection's socket.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        return False
    if poller is None:
        try:
            poller = _watch(dbapi_conn)
        except Exception:
            return False
    if not poller.poll(0):
        return True
    autocommit = dbapi_conn.autocommit
    try:
        dbapi_conn.autocommit = True
        dbapi_conn.execute("SELECT 1")
        dbapi_conn.autocommit = autocommit
    except Exception:
        return False
    return True


def _watch(dbapi_conn: Any) -> Any:
    poller = select.poll()
    poller.register(dbapi_conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return poller


def _check_alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    # The pool replaces the connection (and tries again) on a DisconnectionError.
    if not connection_alive(dbapi_conn):
        raise DisconnectionError("the database closed this pooled connection")


class ReadPool:
    """Autocommit psycopg connections for statements that are each a transaction (the chunk
    store's reads, the game's one-statement actions), beside an engine's pool.

    A checkout from the engine's pool costs an SQLAlchemy wrapper, a ``BEGIN`` with the first
    statement and a ``ROLLBACK`` on return; here a read is its one statement: connections
    stay in autocommit (a single SELECT needs no transaction), each with a binary cursor
    kept for it, are handed out last-in first-out, and are checked by
    :func:`connection_alive`. At most ``limit`` are in use at once (others wait up to
    ``timeout`` seconds, as on the engine's pool) and ``idle`` are kept; connections older
    than ``recycle`` seconds are replaced.
    """

    def __init__(
        self, engine: Engine, *, idle: int, limit: int, recycle: float, timeout: float = 30.0
    ) -> None:
        self._engine = engine
        self._idle_max = idle
        self._limit = limit
        self._recycle = recycle
        self._timeout = timeout
        self._free: list[PooledRead] = []
        self._in_use = 0
        self._waiting = 0
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._generation = 0
        self._forked = False
        _after_fork.add(self)

    def acquire(self, *, fresh: bool = False) -> tuple[PooledRead, bool]:
        """A connection and whether it was idle in the pool (so it may have died meanwhile);
        ``fresh`` asks for a new one and drops the idle ones. Give it back by
        :meth:`release`."""
        stale: list[PooledRead] = []
        with self._lock:
            if self._forked:
                # A forked child must not touch its parent's sockets, not even to close them.
                self._forked = False
                self._free.clear()
                self._generation += 1
            if self._in_use >= self._limit:
                self._waiting += 1
                try:
                    if not self._returned.wait_for(
                        lambda: self._in_use < self._limit, self._timeout
                    ):
                        raise PoolTimeoutError(
                            f"no read connection free after {self._timeout:.0f} s"
                        )
                finally:
                    self._waiting -= 1
            self._in_use += 1
            if fresh:
                stale, self._free = self._free, []
                self._generation += 1
            found = None
            now = time.monotonic()
            while self._free:
                item = self._free.pop()
                if now - item.born < self._recycle and connection_alive(item.conn, item.poller):
                    found = item
                    break
                stale.append(item)
            generation = self._generation
        for item in stale:
            _close(item.conn)
        if found is not None:
            return found, True
        try:
            record = self._engine.raw_connection()
            conn: Any = record.driver_connection
            record.detach()  # ours from now on: the engine's pool makes itself another
            conn.autocommit = True
        except BaseException:
            self._done()
            raise
        return PooledRead(conn, time.monotonic(), generation), False

    def release(self, item: PooledRead) -> None:
        """Take back a connection from :meth:`acquire` (closed if it is not idle)."""
        conn = item.conn
        # Only an idle connection of this generation goes back (not one left mid-result).
        idle = not conn.closed and conn.pgconn.transaction_status == 0
        with self._lock:
            self._in_use -= 1
            if self._waiting:
                self._returned.notify()
            if (
                idle
                and item.generation == self._generation
                and not self._forked
                and len(self._free) < self._idle_max
            ):
                self._free.append(item)
                return
            forked = self._forked
        if not forked:
            _close(conn)

    def _done(self) -> None:
        with self._lock:
            self._in_use -= 1
            if self._waiting:
                self._returned.notify()

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            stale, self._free = self._free, []
            self._generation += 1
            forked = self._forked
        if not forked:
            for item in stale:
                _close(item.conn)

    def _fork(self) -> None:
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._in_use = self._waiting = 0
        self._forked = True


class PooledRead:
    """A :class:`ReadPool` connection, its binary cursor and the poll of its socket."""

    __slots__ = ("born", "conn", "cursor", "generation", "poller")

    def __init__(self, conn: Any, born: float, generation: int) -> None:
        self.conn = conn
        self.cursor = conn.cursor(binary=True)
        self.poller = _watch(conn)
        self.born = born
        self.generation = generation


_after_fork: weakref.WeakSet[ReadPool] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for pool in list(_after_fork):
        pool._fork()


os.register_at_fork(after_in_child=_forget_parent_connections)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


_READ_POOLS: weakref.WeakKeyDictionary[Engine, ReadPool] = weakref.WeakKeyDictionary()
_READ_POOLS_LOCK = threading.Lock()


def read_pool(engine: Engine) -> ReadPool:
    """The :class:`ReadPool` of a PostgreSQL ``engine`` (made on first use, sized like the
    engine's pool, emptied by ``engine.dispose()``)."""
    pool = _READ_POOLS.get(engine)
    if pool is not None:
        return pool
    with _READ_POOLS_LOCK:
        pool = _READ_POOLS.get(engine)
        if pool is None:
            size = engine.pool.size() if hasattr(engine.pool, "size") else 5
            overflow = int(getattr(engine.pool, "_max_overflow", 10))
            recycle = float(getattr(engine.pool, "_recycle", -1))
            pool = ReadPool(
                engine,
                idle=size,
                limit=size + max(overflow, 0),
                recycle=recycle if recycle > 0 else float("inf"),
            )
            event.listen(engine, "engine_disposed", lambda _engine: pool.dispose())
            _READ_POOLS[engine] = pool
    return pool


# --- SQLite: the reads' connections ------------------------------------------------------


class SQLiteReads:
    """Connections of a SQLite file engine for reads, beside its pool, handed out last in,
    first out.

    A checkout of the engine's pool (its wrapper, events and the rollback on return) cost
    16 us of a cold read's 110. These connections run each read as a statement of its own
    (the engine turns pysqlite's transaction handling off), so nothing is left to reset:
    one that comes back inside a transaction is closed. ``idle`` are kept; in-memory
    databases and other pools (a connection per thread) keep using the engine's pool.
    """

    def __init__(self, engine: Engine, idle: int) -> None:
        self._engine = engine
        self._idle = idle
        self._free: list[Any] = []
        self._orphans: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def acquire(self) -> Any:
        """A raw ``sqlite3`` connection; give it back by :meth:`release`."""
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not use its parent's connections, nor close them
                # (closing one may touch the parent's WAL): they are kept, unused.
                self._orphans += self._free
                self._free, self._pid = [], os.getpid()
            if self._free:
                return self._free.pop()
        record = self._engine.raw_connection()
        conn = record.driver_connection
        record.detach()  # ours from now on: the engine's pool makes itself another
        return conn

    def release(self, conn: Any) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._orphans.append(conn)  # the parent's: see acquire
                return
            if not conn.in_transaction and len(self._free) < self._idle:
                self._free.append(conn)
                return
        _close(conn)

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            if self._pid != os.getpid():
                return  # the parent's: see acquire
            stale, self._free = self._free, []
        for conn in stale:
            _close(conn)


_SQLITE_READS: weakref.WeakKeyDictionary[Engine, SQLiteReads | None] = weakref.WeakKeyDictionary()


def sqlite_reads(engine: Engine) -> SQLiteReads | None:
    """The :class:`SQLiteReads` of a SQLite file ``engine`` with a queue pool (made on first
    use, emptied by ``engine.dispose()``); None for other engines."""
    if engine in _SQLITE_READS:
        return _SQLITE_READS[engine]
    with _READ_POOLS_LOCK:
        if engine not in _SQLITE_READS:
            reads = None
            database = engine.url.database or ""
            if (
                isinstance(engine.pool, QueuePool)
                and database not in ("", ":memory:")
                and "mode=memory" not in database
            ):
                reads = SQLiteReads(engine, idle=max(engine.pool.size(), 1))
                event.listen(engine, "engine_disposed", lambda _engine: reads.dispose())
            _SQLITE_READS[engine] = reads
    return _SQLITE_READS[engine]
