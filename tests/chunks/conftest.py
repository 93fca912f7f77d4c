"""Fixtures of the chunk-store tests outside the contract class: each backend x cache tier.

``backend`` (root conftest) gives SQLite and PostgreSQL; ``cache_tier`` gives the in-process
LRU only (``"memory"``) and the LRU in front of Redis (``"redis"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.chunks.store_contract import HEIGHT, MIN_Y, open_database
from voxeldb import ChunkStore, Database


@pytest.fixture(params=["memory", "redis"])
def cache_tier(request: pytest.FixtureRequest) -> str:
    """The cache in front of the database: ``"memory"`` (LRU only) or ``"redis"``."""
    return str(request.param)


@pytest.fixture
def db(
    database_url: str,
    cache_tier: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Database]:
    database = open_database(database_url, cache_tier, request, monkeypatch)
    yield database
    database.close()


@pytest.fixture
def world(db: Database) -> uuid.UUID:
    return db.create_world(f"w-{uuid.uuid4().hex[:8]}", {"height": HEIGHT, "min_y": MIN_Y})


@pytest.fixture
def store(db: Database, world: uuid.UUID) -> ChunkStore:
    return db.chunks(world)
