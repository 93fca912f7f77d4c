"""Table sizes and row counts, and the seed's ``check_database_health()`` built on them.

:func:`table_stats` is the one place that counts rows; ``voxeldb health`` (``voxeldb.ops``)
calls it too.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select, table, text

from voxeldb._text import format_size
from voxeldb.meta._session import get_engine

__all__ = ["EXACT_COUNT_MAX_BYTES", "check_database_health", "count_rows", "table_stats"]

log = logging.getLogger(__name__)

EXACT_COUNT_MAX_BYTES = 64 * 1024 * 1024
"""An exact ``count(*)`` of a bigger PostgreSQL table would take a while: its row count is the
planner's estimate (``pg_class.reltuples``) instead, marked ``rows_estimated``."""

_PG_TABLES = text(
    "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
    "ORDER BY 3 DESC, 1"
)


def count_rows(conn: Connection, name: str) -> int:
    """``SELECT count(*)`` of the table ``name`` (quoted by SQLAlchemy)."""
    return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def table_stats(conn: Connection, *, rows: bool = True) -> list[dict[str, Any]]:
    """One entry per table of the current schema: ``name``, ``bytes`` where known, ``rows``.

    PostgreSQL: every table with ``bytes`` (total with indexes and TOAST), biggest first;
    with ``rows``, an exact count up to :data:`EXACT_COUNT_MAX_BYTES`, the planner's estimate
    beyond. SQLite: by name, ``bytes`` where the optional ``dbstat`` module is compiled in;
    with ``rows``, exact counts. ``rows_estimated`` says which kind a count is.
    """
    out: list[dict[str, Any]] = []
    if conn.dialect.name == "postgresql":
        for name, estimate, size in conn.execute(_PG_TABLES).all():
            entry: dict[str, Any] = {"name": str(name), "bytes": int(size)}
            if rows and int(size) <= EXACT_COUNT_MAX_BYTES:
                entry.update(rows=count_rows(conn, name), rows_estimated=False)
            elif rows:
                entry.update(rows=max(int(estimate), 0), rows_estimated=True)
            out.append(entry)
        return out
    sizes: dict[str, int] = {}
    with contextlib.suppress(Exception), conn.begin_nested():
        for name, size in conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
            sizes[str(name)] = int(size)
    for name in sorted(inspect(conn).get_table_names()):
        entry = {"name": name}
        if rows:
            entry.update(rows=count_rows(conn, name), rows_estimated=False)
        if name in sizes:
            entry["bytes"] = sizes[name]
        out.append(entry)
    return out


def check_database_health(engine: Engine | None = None) -> dict[str, Any]:
    """``{"status": "healthy", "backend": ..., "tables": [...]}`` or ``{"status": "error", ...}``.

    Each table entry has ``name`` and, on PostgreSQL, ``bytes`` and ``size`` (total with
    indexes and TOAST), on SQLite ``rows``. Never raises: an unreachable database is a status.
    """
    try:
        engine = engine or get_engine()
        backend = engine.dialect.name
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            if backend == "postgresql":
                tables = [
                    {"name": t["name"], "bytes": t["bytes"], "size": format_size(t["bytes"])}
                    for t in table_stats(conn, rows=False)
                ]
            else:
                tables = [{"name": t["name"], "rows": t["rows"]} for t in table_stats(conn)]
        return {"status": "healthy", "backend": backend, "tables": tables}
    except Exception as exc:  # a health check reports, it does not raise
        log.warning("database health check failed: %s", exc)
        return {"status": "error", "error": str(exc)}
