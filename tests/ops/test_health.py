"""``voxeldb.ops.collect_health``: the report on both backends, with and without Redis."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests._services import free_port, temporary_database
from voxeldb.meta import World
from voxeldb.ops import collect_health


def test_a_migrated_database_is_healthy(
    database_url: str, session_local: sessionmaker[Session], backend: str, redis_url: str
) -> None:
    with session_local() as s:
        s.add_all([World(name="a"), World(name="b")])
        s.commit()
    report = collect_health(database_url, redis_url.replace("redis://", "redis://:secret@", 1))
    database = report["database"]
    assert report["problems"] == []
    assert report["status"] in ("healthy", "degraded")  # the test Redis may have no maxmemory
    assert database["backend"] == backend
    assert database["schema_current"] is True
    tables = {t["name"]: t for t in database["tables"]}
    assert tables["worlds"]["rows"] == 2
    assert tables["worlds"]["rows_estimated"] is False
    assert report["cache"]["redis_reachable"] is True
    assert "secret" not in report["cache"]["redis_url"]
    assert "***" in report["cache"]["redis_url"]


def test_a_database_without_the_schema_is_unhealthy(backend: str) -> None:
    with temporary_database(backend) as url:
        report = collect_health(url, None)
    assert report["status"] == "unhealthy"
    assert report["database"]["alembic_revision"] is None
    assert any("schema is missing" in p for p in report["problems"])


def test_unreachable_services_are_reported_not_raised() -> None:
    port = free_port()
    report = collect_health(
        f"postgresql+psycopg://nobody:hunter2@127.0.0.1:{port}/none", f"redis://127.0.0.1:{port}/0"
    )
    assert report["status"] == "unhealthy"
    assert report["database"]["reachable"] is False
    assert "hunter2" not in report["database"]["url"]
    assert report["cache"]["redis_reachable"] is False
    assert any("Redis unreachable" in w for w in report["warnings"])
