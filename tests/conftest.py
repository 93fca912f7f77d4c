"""Fixtures shared by every test package: real databases and real Redis, never stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests._services import REDIS_TEST_URL, require_redis, temporary_database

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
