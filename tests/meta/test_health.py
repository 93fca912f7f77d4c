"""check_database_health on both backends, and on a database that is not there."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests._services import free_port
from voxeldb._engine import make_engine
from voxeldb.meta import User, World, check_database_health


def test_healthy_database_reports_tables(
    session_local: sessionmaker[Session], backend: str
) -> None:
    with session_local() as s:
        s.add_all([World(name="a"), World(name="b")])
        s.commit()
    health = check_database_health()
    assert health["status"] == "healthy"
    assert health["backend"] == backend
    tables = {t["name"]: t for t in health["tables"]}
    assert {"users", "worlds", "world_chunks", "block_states", "alembic_version"} <= set(tables)
    if backend == "postgresql":
        assert tables["worlds"]["bytes"] > 0
        assert tables["worlds"]["size"].endswith(("bytes", "kB", "MB"))
    else:
        assert tables["worlds"]["rows"] == 2
        assert tables[User.__tablename__]["rows"] == 0


def test_unreachable_database_is_a_status_not_an_exception() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        health = check_database_health(engine)
    finally:
        engine.dispose()
    assert health["status"] == "error"
    assert "127.0.0.1" in health["error"] or "connect" in health["error"].lower()
