"""``check_database_health()``: reachability plus table sizes (PostgreSQL) or row counts (SQLite)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, func, inspect, select, table, text

from voxeldb.meta._session import get_engine

__all__ = ["check_database_health"]

log = logging.getLogger(__name__)

_PG_SIZES = text(
    "SELECT tablename, pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass) "
    "FROM pg_tables WHERE schemaname = current_schema() ORDER BY 2 DESC, 1"
)


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
            tables: list[dict[str, Any]] = []
            if backend == "postgresql":
                for name, size in conn.execute(_PG_SIZES):
                    tables.append({"name": name, "bytes": int(size), "size": _pretty(int(size))})
            else:
                for name in sorted(inspect(conn).get_table_names()):
                    # table() quotes the name; the name comes from the catalog anyway.
                    count = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
                    tables.append({"name": name, "rows": int(count)})
        return {"status": "healthy", "backend": backend, "tables": tables}
    except Exception as exc:  # a health check reports, it does not raise
        log.warning("database health check failed: %s", exc)
        return {"status": "error", "error": str(exc)}


def _pretty(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
