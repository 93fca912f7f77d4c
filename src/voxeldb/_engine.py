"""Engine construction shared by ``voxeldb.connect``, ``voxeldb.meta.SessionLocal`` and the CLI.

One place decides the driver (psycopg 3), the pool, SQLite's pragmas and slow-query logging.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from voxeldb._settings import Settings, get_settings
from voxeldb.errors import ConfigurationError

__all__ = ["install_slow_query_log", "make_engine", "normalize_url", "require_database_file"]

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
            pool_pre_ping=True,
            pool_recycle=settings.pool_recycle_seconds,
            connect_args={"connect_timeout": 10},
        )
        engine = create_engine(parsed, **kwargs)
    else:
        # Writers wait for SQLite's lock instead of failing at once; the store's own
        # transactions begin with BEGIN IMMEDIATE (see voxeldb.chunks) so waits are short.
        kwargs["connect_args"] = {"timeout": 30.0}
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
    install_slow_query_log(engine, settings.slow_query_ms)
    return engine


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
