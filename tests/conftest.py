"""Fixtures shared by every test package: real databases and real Redis, never stand-ins.

Databases: ``database_url`` (and ``engine`` on it) is a database of each backend migrated to
head, cloned from a template migrated once per test session and backend (PostgreSQL:
``CREATE DATABASE ... TEMPLATE``; SQLite: a copy of the file). ``empty_database_url`` is an
empty, unmigrated one, for the tests of migrations and of copying into an empty database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests._services import (
    REDIS_TEST_URL,
    TemplateDatabase,
    migrated_template,
    require_redis,
    temporary_database,
)
from voxeldb._engine import make_engine
from voxeldb.meta import SessionLocal, configure

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class DatabaseTemplates:
    """The session's migrated template per backend, made on first use, dropped at the end."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._templates: dict[str, TemplateDatabase] = {}

    def __getitem__(self, backend: str) -> TemplateDatabase:
        if backend not in self._templates:
            self._templates[backend] = self._stack.enter_context(migrated_template(backend))
        return self._templates[backend]


@pytest.fixture(scope="session")
def database_templates() -> Iterator[DatabaseTemplates]:
    with contextlib.ExitStack() as stack:
        yield DatabaseTemplates(stack)


@pytest.fixture
def database_url(backend: str, database_templates: DatabaseTemplates) -> Iterator[str]:
    """A database of its own on each backend, migrated to head; dropped afterwards."""
    with database_templates[backend].clone() as url:
        yield url


@pytest.fixture
def empty_database_url(backend: str) -> Iterator[str]:
    """An empty, unmigrated database of its own on each backend; dropped afterwards."""
    with temporary_database(backend) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on this test's database (migrated to head) of each backend."""
    eng = make_engine(database_url)
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
