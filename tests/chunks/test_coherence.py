"""Cache coherence across processes (CONTRACT §4): after a write returns, nobody reads the old.

Process A caches a region (in its in-process LRU, and in Redis when configured); this
process, B, then overwrites chunks (put, put_many, set_blocks, delete and store again); A
re-reads at once and must see the new data. With Redis, B also writes through a connection
without Redis, so Redis keeps the old entries and A (its LRU cleared) must not trust them.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import voxeldb
from tests._services import REDIS_TEST_URL

HEIGHT = 64
MIN_Y = 0

pytestmark = pytest.mark.slow


def _reader(url: str, cache_url: str, prefix: str, world: str, pipe: Any) -> None:
    import os

    os.environ["VOXELDB_REDIS_KEY_PREFIX"] = prefix
    with voxeldb.connect(url, cache=cache_url) as db:
        store = db.chunks(world)
        while True:
            command, *args = pipe.recv()
            if command == "stop":
                break
            if command == "clear_lru":
                db.lru.clear()
                pipe.send(None)
            elif command == "region":
                got = store.region(*args)
                redis_hits = db.redis.stats()["hits"] if db.redis is not None else 0
                pipe.send(
                    ({k: np.array(v) for k, v in got.items()}, db.lru.stats()["hits"], redis_hits)
                )
            elif command == "block":
                pipe.send(store.get_block(*args))


def chunk(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, 9, size=(HEIGHT, 16, 16)).astype(np.uint16)


@pytest.fixture
def cache_url(cache_tier: str, request: pytest.FixtureRequest) -> str:
    """The ``cache=`` argument of each process for the tier (``conftest.cache_tier``)."""
    if cache_tier == "redis":
        request.getfixturevalue("redis_url")
        return REDIS_TEST_URL
    return "memory"


@pytest.fixture
def reader(
    database_url: str, cache_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, uuid.UUID]]:
    monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", redis_prefix)
    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        world = db.create_world("shared", {"height": HEIGHT, "min_y": MIN_Y})
        db.chunks(world).put_many((x, z, chunk(10 * x + z)) for x in range(4) for z in range(4))
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_reader, args=(database_url, cache_url, redis_prefix, str(world), child)
    )
    proc.start()
    try:
        yield parent, world
    finally:
        parent.send(("stop",))
        proc.join(60)
        assert proc.exitcode == 0


def ask(pipe: Any, *command: Any) -> Any:
    pipe.send(command)
    assert pipe.poll(60), f"reader process did not answer {command}"
    return pipe.recv()


def test_writes_are_seen_at_once_through_the_lru(
    reader: tuple[Any, uuid.UUID], database_url: str, cache_url: str
) -> None:
    pipe, world = reader
    got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
    assert len(got) == 16
    got, lru_hits, _ = ask(pipe, "region", 0, 0, 3, 3)
    assert lru_hits >= 16  # A now serves this region from its cache

    with voxeldb.connect(database_url, cache=cache_url) as db:
        store = db.chunks(world)
        store.put(0, 0, chunk(100))
        got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
        np.testing.assert_array_equal(got[(0, 0)], chunk(100))

        store.put_many([(1, 1, chunk(111)), (2, 2, chunk(122))])
        got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
        np.testing.assert_array_equal(got[(1, 1)], chunk(111))
        np.testing.assert_array_equal(got[(2, 2)], chunk(122))

        store.set_blocks([(16 * 3 + 5, 7, 16 * 3 + 2, "gold_block")])
        assert ask(pipe, "block", 16 * 3 + 5, 7, 16 * 3 + 2) == {"type": "gold_block"}

        assert store.delete(3, 0)
        got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
        assert (3, 0) not in got and len(got) == 15
        store.put(3, 0, chunk(130))
        got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
        np.testing.assert_array_equal(got[(3, 0)], chunk(130))
        # Deleted and stored again while A holds the previous one: still never the old one.
        store.delete(3, 0)
        store.put(3, 0, chunk(131))
        got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
        np.testing.assert_array_equal(got[(3, 0)], chunk(131))
        for x in range(4):
            for z in range(4):
                want = store.get(x, z)
                assert want is not None
                np.testing.assert_array_equal(got[(x, z)], want)


def test_stale_redis_entries_are_never_served(
    reader: tuple[Any, uuid.UUID], database_url: str, cache_url: str
) -> None:
    pipe, world = reader
    ask(pipe, "region", 0, 0, 3, 3)  # fills Redis (when configured) and A's LRU
    ask(pipe, "clear_lru")
    _, _, redis_hits = ask(pipe, "region", 0, 0, 3, 3)
    if cache_url != "memory":
        assert redis_hits >= 16  # the region came from Redis
    # B writes without Redis: Redis keeps every old entry.
    with voxeldb.connect(database_url, cache="memory") as db:
        store = db.chunks(world)
        store.put(0, 0, chunk(200))
        store.set_block(16 + 1, 1, 1, "diamond_block")
        store.put_many([(2, 2, chunk(222))])
    ask(pipe, "clear_lru")
    got, _, _ = ask(pipe, "region", 0, 0, 3, 3)
    np.testing.assert_array_equal(got[(0, 0)], chunk(200))
    np.testing.assert_array_equal(got[(2, 2)], chunk(222))
    assert ask(pipe, "block", 17, 1, 1) == {"type": "diamond_block"}
    np.testing.assert_array_equal(got[(3, 3)], chunk(33))
