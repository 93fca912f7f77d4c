"""Reading a 32 x 32 region (1024 terrain chunks) from each cache tier.

Group ``cache-region-32x32``: Redis in encoded mode (one MGET + ``decode_chunk`` each) is
the baseline; Redis in decoded mode (one MGET of the raw arrays + ``np.frombuffer``) and
the in-process LRU hit are read off against it. ``redis-mget-encoded`` is the MGET alone.

Runs against the shared Redis under a prefix of its own, deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pytest
import redis
from tests._services import REDIS_TEST_URL, require_redis

from voxeldb.chunks import ChunkLRU, RedisChunkCache
from voxeldb.chunks.codec import encode_chunk
from voxeldb.terrain import generate_chunk

SIDE = 32
SEED = 20240601
WORLD = "bench"
GROUP = "cache-region-32x32"


@pytest.fixture(scope="module")
def region() -> dict[tuple[int, int], np.ndarray[Any, Any]]:
    return {
        (cx, cz): generate_chunk(cx, cz, seed=SEED)
        for cx in range(-SIDE // 2, SIDE // 2)
        for cz in range(-SIDE // 2, SIDE // 2)
    }


@pytest.fixture(scope="module")
def wanted(region: dict[tuple[int, int], np.ndarray[Any, Any]]) -> list[tuple[int, int, int]]:
    return [(cx, cz, 1) for cx, cz in region]


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    require_redis()
    name = f"voxeldb_bench_{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _filled(
    mode: Literal["encoded", "decoded"],
    prefix: str,
    region: dict[tuple[int, int], np.ndarray[Any, Any]],
) -> RedisChunkCache:
    # A generous timeout: the decoded region is ~200 MB in one batch of replies.
    cache = RedisChunkCache(
        REDIS_TEST_URL, prefix=f"{prefix}:{mode}", mode=mode, timeout_seconds=30
    )
    items = [(cx, cz, 1, encode_chunk(a), a) for (cx, cz), a in region.items()]
    assert cache.put_many(WORLD, items) == len(items)
    return cache


def _check(
    got: dict[tuple[int, int], Any], region: dict[tuple[int, int], np.ndarray[Any, Any]]
) -> None:
    assert len(got) == len(region)
    some = next(iter(region))
    assert np.array_equal(got[some], region[some])


def test_region_redis_encoded(benchmark: Any, region: Any, wanted: Any, prefix: str) -> None:
    benchmark.group = GROUP
    cache = _filled("encoded", prefix, region)
    got = benchmark.pedantic(
        cache.get_arrays_many, args=(WORLD, wanted), rounds=5, iterations=1, warmup_rounds=1
    )
    _check(got, region)
    assert cache.stats()["errors"] == 0


def test_region_redis_decoded(benchmark: Any, region: Any, wanted: Any, prefix: str) -> None:
    benchmark.group = GROUP
    cache = _filled("decoded", prefix, region)
    got = benchmark.pedantic(
        cache.get_arrays_many, args=(WORLD, wanted), rounds=5, iterations=1, warmup_rounds=1
    )
    _check(got, region)
    assert cache.stats()["errors"] == 0
    cache.discard_many(WORLD, region)  # 200 MB of the shared server's memory


def test_region_lru_hit(benchmark: Any, region: Any, wanted: Any) -> None:
    benchmark.group = GROUP
    lru = ChunkLRU(512 * 1024 * 1024)
    lru.put_many((key, 1, array) for key, array in region.items())
    pairs = [((cx, cz), v) for cx, cz, v in wanted]
    got = benchmark(lru.get_many, pairs)
    _check(got, region)


def test_redis_mget_encoded(benchmark: Any, region: Any, wanted: Any, prefix: str) -> None:
    benchmark.group = "redis-mget-encoded"
    cache = _filled("encoded", prefix, region)
    got = benchmark.pedantic(
        cache.get_many, args=(WORLD, wanted), rounds=10, iterations=1, warmup_rounds=1
    )
    assert len(got) == len(region)
    assert all(isinstance(v, bytes) for v in got.values())
