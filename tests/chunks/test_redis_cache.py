"""RedisChunkCache against the real shared Redis, each test under a prefix of its own."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from tests._services import REDIS_TEST_URL, free_port
from voxeldb.chunks.caches import MGET_BATCH, RedisChunkCache
from voxeldb.errors import ChunkFormatError, ConfigurationError, ValidationError

DTYPES = [np.uint16, np.uint32]


def terrain_like(seed: int, dtype: Any = np.uint16, height: int = 384) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    blocks = np.zeros((height, 16, 16), dtype=dtype)
    blocks[: height // 2] = 2
    blocks[: height // 2] += rng.integers(0, 3, size=(height // 2, 16, 16)).astype(dtype)
    if dtype == np.uint32:
        blocks[0, 0, 0] = 100_000  # an id only uint32 can hold
    return blocks


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def encoded(redis_url: str, redis_prefix: str) -> Iterator[RedisChunkCache]:
    cache = RedisChunkCache(redis_url, prefix=redis_prefix, mode="encoded")
    yield cache
    cache.close()


@pytest.fixture
def decoded(redis_url: str, redis_prefix: str) -> Iterator[RedisChunkCache]:
    cache = RedisChunkCache(redis_url, prefix=redis_prefix, mode="decoded")
    yield cache
    cache.close()


def test_key_layout_and_value_starts_with_the_little_endian_version(
    encoded: RedisChunkCache, client: redis.Redis, redis_prefix: str
) -> None:
    assert encoded.put_many("w1", [(-3, 4, 2**40 + 5, b"payload", None)]) == 1
    raw = client.get(f"{redis_prefix}:chunk:w1:-3:4")
    assert raw == struct.pack("<q", 2**40 + 5) + b"payload"


def test_encoded_mode_returns_the_stored_bytes_for_the_wanted_version_only(
    encoded: RedisChunkCache,
) -> None:
    encoded.put_many("w", [(0, 0, 1, b"first", None), (1, 0, 7, b"second", None)])
    got = encoded.get_many("w", [(0, 0, 1), (1, 0, 6), (2, 0, 1)])
    assert got == {(0, 0): b"first"}
    assert encoded.get_encoded_many("w", [(1, 0, 7)]) == {(1, 0): b"second"}
    stats = encoded.stats()
    assert stats["hits"] == 2
    assert stats["misses"] == 2
    assert stats["errors"] == 0
    assert stats["state"] == "up"


def test_worlds_do_not_share_entries(encoded: RedisChunkCache) -> None:
    encoded.put_many("a", [(0, 0, 1, b"of a", None)])
    assert encoded.get_many("b", [(0, 0, 1)]) == {}
    assert encoded.get_many("a", [(0, 0, 1)]) == {(0, 0): b"of a"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_encoded_mode_round_trips_arrays_through_the_codec(
    encoded: RedisChunkCache, dtype: Any
) -> None:
    from voxeldb.chunks.codec import decode_chunk, encode_chunk

    blocks = terrain_like(1, dtype)
    # Given only the array, the cache encodes it; given only bytes, it stores them.
    encoded.put_many("w", [(0, 0, 1, None, blocks), (0, 1, 1, encode_chunk(blocks), None)])
    raw = encoded.get_many("w", [(0, 0, 1), (0, 1, 1)])
    assert set(raw) == {(0, 0), (0, 1)}
    for value in raw.values():
        assert isinstance(value, bytes)
        again = decode_chunk(value)
        assert again.dtype == dtype
        assert np.array_equal(again, blocks)
    arrays = encoded.get_arrays_many("w", [(0, 0, 1), (0, 1, 2)])
    assert set(arrays) == {(0, 0)}
    assert arrays[(0, 0)].dtype == dtype
    assert np.array_equal(arrays[(0, 0)], blocks)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decoded_mode_round_trips_both_dtypes_without_a_copy(
    decoded: RedisChunkCache, dtype: Any
) -> None:
    blocks = terrain_like(2, dtype, height=64)
    decoded.put_many("w", [(5, -5, 3, None, blocks)])
    got = decoded.get_many("w", [(5, -5, 3)])
    array = got[(5, -5)]
    assert isinstance(array, np.ndarray)
    assert array.dtype == dtype
    assert array.shape == (64, 16, 16)
    assert np.array_equal(array, blocks)
    assert not array.flags.owndata  # a view of the Redis reply
    assert not array.flags.writeable
    assert array.flags.aligned
    assert decoded.get_many("w", [(5, -5, 4)]) == {}


def test_decoded_mode_accepts_encoded_bytes_and_serves_both_forms(
    decoded: RedisChunkCache,
) -> None:
    from voxeldb.chunks.codec import decode_chunk, encode_chunk

    blocks = terrain_like(3)
    decoded.put_many("w", [(0, 0, 1, encode_chunk(blocks), None)])
    arrays = decoded.get_arrays_many("w", [(0, 0, 1)])
    assert np.array_equal(arrays[(0, 0)], blocks)
    data = decoded.get_encoded_many("w", [(0, 0, 1)])
    assert np.array_equal(decode_chunk(data[(0, 0)]), blocks)


def test_decoded_mode_stores_non_contiguous_and_big_endian_arrays(
    decoded: RedisChunkCache,
) -> None:
    blocks = terrain_like(4, np.uint32, height=32)
    strided = np.asfortranarray(blocks)
    swapped = blocks.astype(">u4")
    decoded.put_many("w", [(0, 0, 1, None, strided), (1, 0, 1, None, swapped)])
    got = decoded.get_arrays_many("w", [(0, 0, 1), (1, 0, 1)])
    assert np.array_equal(got[(0, 0)], blocks)
    assert np.array_equal(got[(1, 0)], blocks)


def test_ttl_is_set_on_every_write(redis_url: str, redis_prefix: str, client: redis.Redis) -> None:
    cache = RedisChunkCache(redis_url, prefix=redis_prefix, ttl_seconds=120)
    cache.put_many("w", [(0, 0, 1, b"x", None), (0, 1, 1, b"y", None)])
    for cz in (0, 1):
        ttl = client.ttl(cache.key("w", 0, cz))
        assert 0 < ttl <= 120
    forever = RedisChunkCache(redis_url, prefix=redis_prefix, ttl_seconds=0)
    forever.put_many("w", [(0, 2, 1, b"z", None)])
    assert client.ttl(forever.key("w", 0, 2)) == -1  # ttl_seconds=0: no expiry


def test_more_keys_than_one_mget_batch(encoded: RedisChunkCache) -> None:
    n = MGET_BATCH * 2 + 10
    items = [(i, -i, i, i.to_bytes(4, "little"), None) for i in range(n)]
    assert encoded.put_many("w", items) == n
    wanted = [(i, -i, i if i % 3 else i + 1) for i in range(n)]
    got = encoded.get_many("w", wanted)
    assert len(got) == sum(1 for i in range(n) if i % 3)
    assert all(got[(i, -i)] == i.to_bytes(4, "little") for i in range(n) if i % 3)


def test_discard_many(encoded: RedisChunkCache) -> None:
    encoded.put_many("w", [(i, 0, 1, b"v", None) for i in range(5)])
    assert encoded.discard_many("w", [(0, 0), (1, 0), (9, 9)]) == 2
    assert encoded.discard_many("w", []) == 0
    assert set(encoded.get_many("w", [(i, 0, 1) for i in range(5)])) == {(2, 0), (3, 0), (4, 0)}


def test_empty_requests_do_not_touch_redis(encoded: RedisChunkCache) -> None:
    assert encoded.get_many("w", []) == {}
    assert encoded.put_many("w", []) == 0
    assert encoded.stats()["hits"] == encoded.stats()["misses"] == 0


def test_entries_of_the_other_mode_are_misses(redis_url: str, redis_prefix: str) -> None:
    raw = RedisChunkCache(redis_url, prefix=redis_prefix, mode="decoded")
    enc = RedisChunkCache(redis_url, prefix=redis_prefix, mode="encoded")
    raw.put_many("w", [(0, 0, 1, None, terrain_like(5, height=16))])
    enc.put_many("w", [(1, 0, 1, b"not a raw array", None)])
    assert enc.get_many("w", [(0, 0, 1)]) == {}
    assert raw.get_many("w", [(1, 0, 1)]) == {}


def test_damaged_entries_are_misses(decoded: RedisChunkCache, client: redis.Redis) -> None:
    decoded.put_many("w", [(0, 0, 1, None, terrain_like(6, height=16))])
    key = decoded.key("w", 0, 0)
    client.set(key, client.get(key)[:-1])  # type: ignore[index]
    client.set(decoded.key("w", 1, 0), b"\x01")  # shorter than a version
    assert decoded.get_many("w", [(0, 0, 1), (1, 0, 1)]) == {}


def test_an_undecodable_encoded_entry_is_a_miss(encoded: RedisChunkCache) -> None:
    encoded.put_many("w", [(0, 0, 1, b"definitely not a chunk", None)])
    assert encoded.get_arrays_many("w", [(0, 0, 1)]) == {}


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((16, 16, 15), np.uint16),
        np.zeros((0, 16, 16), np.uint16),
        np.zeros((16, 16, 16), np.int16),
        np.zeros((16, 16, 16), np.float32),
        np.zeros((16, 256), np.uint16),
    ],
)
def test_decoded_mode_rejects_malformed_arrays(decoded: RedisChunkCache, bad: Any) -> None:
    with pytest.raises(ChunkFormatError, match="chunk"):
        decoded.put_many("w", [(0, 0, 1, None, bad)])


def test_a_put_with_neither_form_is_rejected(encoded: RedisChunkCache) -> None:
    with pytest.raises(ValidationError, match="encoded bytes or the array"):
        encoded.put_many("w", [(0, 0, 1, None, None)])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"mode": "pickled"}, "mode"),
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retry_seconds": -1.0}, "retry_seconds"),
        ({"prefix": ""}, "prefix"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(ConfigurationError, match=word):
        RedisChunkCache(REDIS_TEST_URL, **kwargs)


def test_a_malformed_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Redis URL"):
        RedisChunkCache("http://secret@127.0.0.1:6379/0")


def test_server_info_of_the_shared_server(encoded: RedisChunkCache) -> None:
    info = encoded.server_info()
    assert info["reachable"] is True
    assert isinstance(info["maxmemory"], int)
    assert isinstance(info["policy"], str) and info["policy"]
    assert info["used_memory"] > 0
    assert info["state"] == "up"


def test_server_info_of_nothing_never_raises() -> None:
    cache = RedisChunkCache(
        f"redis://:hunter2@127.0.0.1:{free_port()}/0", retry_seconds=60, timeout_seconds=0.2
    )
    info = cache.server_info()
    assert info["reachable"] is False
    assert info["maxmemory"] is None
    assert info["state"] == "down"
    assert "hunter2" not in info["url"]
