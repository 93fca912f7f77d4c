"""RedisChunkCache fails open: a dead or hung Redis costs misses, one warning, bounded time.

Each test runs its own redis-server (tests._services.throwaway_redis) so it can kill,
pause and restart it; the shared Redis is never touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from tests._services import ThrowawayRedis, free_port, throwaway_redis
from voxeldb.chunks._redis import RedisChunkCache

pytestmark = pytest.mark.slow

TIMEOUT = 0.25
RETRY = 0.4
PER_CALL_LIMIT = 1.0  # the brief's bound: no call may take a second, however Redis fails
WANTED = [(i, 0, 1) for i in range(20)]
ITEMS = [(i, 0, 1, f"chunk {i}".encode(), None) for i in range(20)]


@pytest.fixture
def server() -> Iterator[ThrowawayRedis]:
    with throwaway_redis() as s:
        yield s


@pytest.fixture
def cache(server: ThrowawayRedis) -> Iterator[RedisChunkCache]:
    c = RedisChunkCache(server.url, prefix="faults", timeout_seconds=TIMEOUT, retry_seconds=RETRY)
    yield c
    c.close()


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "voxeldb.cache" and r.levelno == level]


def hammer(cache: RedisChunkCache, seconds: float) -> list[float]:
    """Read, write and discard for ``seconds``; every call must fail open. Returns durations."""
    durations: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        assert cache.get_many("w", WANTED) == {}
        durations.append(time.monotonic() - start)
        start = time.monotonic()
        assert cache.put_many("w", ITEMS[:2]) == 0
        assert cache.discard_many("w", [(0, 0)]) == 0
        durations.append(time.monotonic() - start)
        time.sleep(0.01)
    return durations


def wait_for_hits(cache: RedisChunkCache, expected: int, within: float = 5.0) -> float:
    """Poll until get_many hits ``expected`` entries; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if len(cache.get_many("w", WANTED)) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"the cache did not serve {expected} hits within {within} s")


def test_killed_redis_means_misses_one_warning_then_recovery(
    server: ThrowawayRedis, cache: RedisChunkCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voxeldb.cache")
    assert cache.put_many("w", ITEMS) == 20
    assert len(cache.get_many("w", WANTED)) == 20

    server.kill()
    durations = hammer(cache, seconds=3 * RETRY)
    assert max(durations) < PER_CALL_LIMIT
    assert len(records(caplog, logging.WARNING)) == 1
    stats = cache.stats()
    assert stats["state"] == "down"
    assert stats["errors"] >= 2  # it did try again after each retry window...
    assert stats["skipped"] > stats["errors"]  # ...and left Redis alone in between
    assert records(caplog, logging.INFO) == []

    server.start()  # same port, empty
    deadline = time.monotonic() + 5
    while cache.put_many("w", ITEMS) == 0:
        assert time.monotonic() < deadline, "writes did not resume after the retry window"
        time.sleep(0.05)
    assert len(cache.get_many("w", WANTED)) == 20
    assert cache.stats()["state"] == "up"
    back = records(caplog, logging.INFO)
    assert len(back) == 1
    assert "Redis cache is back" in back[0].getMessage()
    assert len(records(caplog, logging.WARNING)) == 1


def test_hung_redis_costs_at_most_one_timeout_per_retry_window(
    server: ThrowawayRedis, cache: RedisChunkCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voxeldb.cache")
    assert cache.put_many("w", ITEMS) == 20

    server.pause()  # connections are accepted, nothing ever answers
    try:
        started = time.monotonic()
        durations = hammer(cache, seconds=3 * RETRY)
        elapsed = time.monotonic() - started
        assert max(durations) < PER_CALL_LIMIT
        slow = [d for d in durations if d >= TIMEOUT * 0.8]
        # One probe per window (plus the first failure), never one timeout per call.
        assert 1 <= len(slow) <= elapsed / RETRY + 2
        assert len(durations) > 4 * len(slow)
        assert len(records(caplog, logging.WARNING)) == 1
        assert cache.stats()["state"] == "down"
        assert cache.server_info()["reachable"] is False
    finally:
        server.resume()

    # The server kept its data; hits come back once the retry window has passed.
    waited = wait_for_hits(cache, 20)
    assert waited < RETRY + 2
    assert cache.stats()["state"] == "up"
    back = records(caplog, logging.INFO)
    assert len(back) == 1
    assert "Redis cache is back" in back[0].getMessage()
    assert len(records(caplog, logging.WARNING)) == 1


def test_many_threads_against_a_hung_redis_are_all_bounded(
    server: ThrowawayRedis, cache: RedisChunkCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voxeldb.cache")
    cache.put_many("w", ITEMS)
    server.pause()
    durations: list[float] = []
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(10):
            start = time.monotonic()
            result = cache.get_many("w", WANTED)
            took = time.monotonic() - start
            with lock:
                durations.append(took)
            assert result == {}

    try:
        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.resume()
    assert len(durations) == 80
    assert max(durations) < PER_CALL_LIMIT
    assert len(records(caplog, logging.WARNING)) == 1


def test_a_redis_that_was_never_there(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="voxeldb.cache")
    cache = RedisChunkCache(
        f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=TIMEOUT, retry_seconds=RETRY
    )
    durations = hammer(cache, seconds=2 * RETRY)
    assert max(durations) < PER_CALL_LIMIT
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    assert cache.stats()["misses"] >= len(WANTED)
    assert cache.server_info()["reachable"] is False
