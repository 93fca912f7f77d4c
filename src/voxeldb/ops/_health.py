"""``voxeldb health``: what an operator checks first, as one dict (and an exit status).

Connection and server version, the Alembic revision against the newest one, table sizes and
row counts (counted by ``voxeldb.meta.table_stats``, as for the seed's ``check_database_health``),
the cache (Redis reachable? its ``maxmemory-policy``) and connection-pool statistics. The status is ``healthy``, ``degraded`` (voxeldb works, something needs a look:
Redis down, a cache that can fill up) or ``unhealthy`` (the database is unreachable or its
schema is not the newest).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from sqlalchemy import Engine, text

from voxeldb._settings import Settings, get_settings
from voxeldb._text import safe_url
from voxeldb.meta import head_revision, table_stats

__all__ = ["collect_health"]

_GOOD_POLICIES = ("allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "volatile-ttl")


def _database(engine: Engine, problems: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "url": safe_url(engine.url),
        "backend": engine.dialect.name,
        "reachable": False,
    }
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            info["reachable"] = True
            info["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
            if engine.dialect.name == "postgresql":
                info["server_version"] = str(conn.execute(text("SHOW server_version")).scalar())
                info["database"] = str(conn.execute(text("SELECT current_database()")).scalar())
                info["size_bytes"] = int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
                info["connections"] = int(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = current_database()"
                        )
                    ).scalar_one()
                )
                info["max_connections"] = int(
                    conn.execute(text("SHOW max_connections")).scalar_one()
                )
                info["tables"] = table_stats(conn)
            else:
                info["server_version"] = "SQLite " + str(
                    conn.execute(text("SELECT sqlite_version()")).scalar()
                )
                page_size = int(conn.execute(text("PRAGMA page_size")).scalar_one())
                pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())
                info["size_bytes"] = page_size * pages
                info["journal_mode"] = str(conn.execute(text("PRAGMA journal_mode")).scalar())
                info["tables"] = table_stats(conn)
            names = {t["name"] for t in info["tables"]}
            revision = None
            if "alembic_version" in names:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            info["alembic_revision"] = revision
    except Exception as exc:
        # The driver's own message: SQLAlchemy's wrapper adds the statement and a link.
        orig = getattr(exc, "orig", None)
        info["error"] = " ".join(str(orig if orig is not None else exc).split())[:300]
        problems.append(f"database unreachable: {info['error']}")
        return info
    head = head_revision()
    info["alembic_head"] = head
    info["schema_current"] = info["alembic_revision"] == head
    if info["alembic_revision"] is None:
        problems.append("the schema is missing: run `voxeldb setup --create-tables`")
    elif not info["schema_current"]:
        problems.append(
            f"the schema is at revision {info['alembic_revision']}, the newest is {head}: "
            "run `voxeldb setup --create-tables`"
        )
    pool = engine.pool
    stats: dict[str, Any] = {"class": type(pool).__name__, "status": pool.status()}
    for attr in ("size", "checkedin", "checkedout", "overflow"):
        fn = getattr(pool, attr, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                stats[attr] = int(fn())
    info["pool"] = stats
    return info


def _cache(redis_url: str | None, settings: Settings, warnings: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "in_process_lru_bytes": settings.cache_bytes,
        "redis_configured": redis_url is not None,
    }
    if redis_url is None:
        return info
    from voxeldb._redis import FAILURES, close_quietly, redis_client

    info["redis_url"] = safe_url(redis_url)
    client = redis_client(redis_url, timeout_seconds=max(settings.redis_timeout_seconds, 1.0))
    try:
        started = time.perf_counter()
        client.ping()
        info["redis_reachable"] = True
        info["redis_latency_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
        server = client.info("server")
        memory = client.info("memory")
        info["redis_version"] = server.get("redis_version")
        info["used_memory_bytes"] = memory.get("used_memory")
        info["maxmemory_bytes"] = memory.get("maxmemory")
        policy = memory.get("maxmemory_policy")
        if policy is None:
            # Older servers leave the policy out of INFO; CONFIG may be renamed away.
            with contextlib.suppress(*FAILURES):
                policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        info["maxmemory_policy"] = policy
        if policy is not None and policy not in _GOOD_POLICIES:
            warnings.append(
                f"Redis maxmemory-policy is {policy}: a full cache then refuses writes instead "
                "of evicting; use allkeys-lru for a cache"
            )
        if not memory.get("maxmemory"):
            warnings.append("Redis has no maxmemory limit: the chunk cache can grow unbounded")
    except FAILURES as exc:
        info["redis_reachable"] = False
        info["redis_error"] = " ".join(str(exc).split())[:300]
        warnings.append(
            f"Redis unreachable ({info['redis_error']}): chunks are served from the database"
        )
    finally:
        close_quietly(client)
    return info


def collect_health(
    database_url: str | None = None,
    redis_url: str | None = None,
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The health report of the database at ``database_url`` and the Redis at ``redis_url``.

    Both default to the settings (``DATABASE_URL``, ``REDIS_URL``). Never raises for an
    unreachable service: that is what the report says.
    """
    from voxeldb._engine import make_engine

    settings = settings or get_settings()
    problems: list[str] = []
    warnings: list[str] = []
    engine = make_engine(database_url, settings)
    try:
        database = _database(engine, problems)
    finally:
        engine.dispose()
    cache = _cache(redis_url if redis_url is not None else settings.redis_url, settings, warnings)
    status = "unhealthy" if problems else ("degraded" if warnings else "healthy")
    return {
        "status": status,
        "problems": problems,
        "warnings": warnings,
        "database": database,
        "cache": cache,
    }
