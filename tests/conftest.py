"""Fixtures shared by every test package: real databases and real Redis, never stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests._services import REDIS_TEST_URL, require_redis, temporary_database
from voxeldb._engine import make_engine
from voxeldb._migrations import upgrade
from voxeldb.meta import SessionLocal, configure

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str) -> Iterator[str]:
    """An empty database on each backend: a temporary SQLite file, or a fresh PostgreSQL database."""
    with temporary_database(backend) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database of each backend, migrated to head."""
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session_local(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """``voxeldb.meta.SessionLocal``, bound to this test's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    configure(database_url)
    yield SessionLocal
    configure(None)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library default (12) is asserted in tests/meta; cost 4 keeps each hash ~1 ms here.
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "4")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    require_redis()
    prefix = f"voxeldb_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_TEST_URL
