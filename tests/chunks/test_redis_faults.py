"""RedisChunkCache fails open: a dead or hung Redis costs misses, one warning, then recovery.

Each test runs its own redis-server (tests._services.throwaway_redis) so it can kill,
pause and restart it; the shared Redis is never touched. Time is the circuit breaker's own
clock (``voxeldb._redis.time.monotonic``), frozen or moved on by the test: the tests assert
what the cache does (how many calls reach Redis, what is logged, what is served), never how
long anything took.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

import voxeldb._redis
from tests._services import ThrowawayRedis, free_port, throwaway_redis
from voxeldb.chunks import RedisChunkCache

pytestmark = pytest.mark.slow

TIMEOUT = 0.25
RETRY = 30.0  # seconds of the fake clock; only the test moves it
WANTED = [(i, 0, 1) for i in range(20)]
ITEMS = [(i, 0, 1, f"chunk {i}".encode(), None) for i in range(20)]


class Clock:
    """The breaker's monotonic clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(voxeldb._redis.time, "monotonic", fake)
    return fake


@pytest.fixture
def server() -> Iterator[ThrowawayRedis]:
    with throwaway_redis() as s:
        yield s


@pytest.fixture
def redis_cache(server: ThrowawayRedis, clock: Clock) -> Iterator[RedisChunkCache]:
    c = RedisChunkCache(server.url, prefix="faults", timeout_seconds=TIMEOUT, retry_seconds=RETRY)
    yield c
    c.close()


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "voxeldb.cache" and r.levelno == level]


def hammer(cache: RedisChunkCache, rounds: int) -> int:
    """Read, write and discard ``rounds`` times; every call must fail open. Returns the
    number of calls made (three per round)."""
    for _ in range(rounds):
        assert cache.get_many("w", WANTED) == {}
        assert cache.put_many("w", ITEMS[:2]) == 0
        assert cache.discard_many("w", [(0, 0)]) == 0
    return 3 * rounds


def test_killed_redis_means_misses_one_warning_then_recovery(
    server: ThrowawayRedis,
    redis_cache: RedisChunkCache,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxeldb.cache")
    assert redis_cache.put_many("w", ITEMS) == 20
    assert len(redis_cache.get_many("w", WANTED)) == 20

    server.kill()
    calls = hammer(redis_cache, rounds=5)
    stats = redis_cache.stats()
    assert stats["state"] == "down"
    # The first call failed; every other one fell inside the retry window: left alone.
    assert (stats["errors"], stats["skipped"]) == (1, calls - 1)
    clock.advance(RETRY)  # the window is over: exactly one call probes again, and fails
    calls = hammer(redis_cache, rounds=2)
    stats = redis_cache.stats()
    assert stats["errors"] == 2
    assert stats["misses"] >= len(WANTED)
    assert len(records(caplog, logging.WARNING)) == 1  # one warning per outage
    assert records(caplog, logging.INFO) == []

    server.start()  # same port, empty
    assert redis_cache.put_many("w", ITEMS) == 0  # still inside the window: not tried
    clock.advance(RETRY)
    assert redis_cache.put_many("w", ITEMS) == 20
    assert len(redis_cache.get_many("w", WANTED)) == 20
    assert redis_cache.stats()["state"] == "up"
    back = records(caplog, logging.INFO)
    assert len(back) == 1
    assert "Redis is back for chunks" in back[0].getMessage()
    assert len(records(caplog, logging.WARNING)) == 1


def test_hung_redis_costs_one_timeout_per_retry_window(
    server: ThrowawayRedis,
    redis_cache: RedisChunkCache,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxeldb.cache")
    assert redis_cache.put_many("w", ITEMS) == 20

    server.pause()  # connections are accepted, nothing ever answers
    try:
        calls = hammer(redis_cache, rounds=6)
        stats = redis_cache.stats()
        # One call waited for the timeout; the others were not made at all.
        assert (stats["errors"], stats["skipped"]) == (1, calls - 1)
        clock.advance(RETRY)
        hammer(redis_cache, rounds=3)
        assert redis_cache.stats()["errors"] == 2  # one probe in the next window
        assert len(records(caplog, logging.WARNING)) == 1
        assert redis_cache.stats()["state"] == "down"
        # A health check asks even inside the window, and says the truth.
        assert redis_cache.server_info()["reachable"] is False
    finally:
        server.resume()

    # The server kept its data; hits come back once the retry window has passed.
    assert redis_cache.get_many("w", WANTED) == {}  # inside the window: a miss
    clock.advance(RETRY)
    assert len(redis_cache.get_many("w", WANTED)) == 20
    assert redis_cache.stats()["state"] == "up"
    back = records(caplog, logging.INFO)
    assert len(back) == 1
    assert "Redis is back" in back[0].getMessage()
    assert len(records(caplog, logging.WARNING)) == 1


def test_many_threads_against_a_hung_redis_probe_it_once(
    server: ThrowawayRedis, redis_cache: RedisChunkCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voxeldb.cache")
    redis_cache.put_many("w", ITEMS)
    server.pause()
    results: list[dict[tuple[int, int], object]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def reader() -> None:
        start.wait()
        for _ in range(10):
            result = redis_cache.get_many("w", WANTED)
            with lock:
                results.append(result)

    try:
        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.resume()
    assert len(results) == 80 and all(r == {} for r in results)
    stats = redis_cache.stats()
    # Threads already waiting on the server when it was found down each fail once; after
    # that, every call of every thread is skipped until the window ends.
    assert 1 <= stats["errors"] <= 8
    assert stats["errors"] + stats["skipped"] == 80
    assert len(records(caplog, logging.WARNING)) == 1


def test_a_redis_that_was_never_there(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="voxeldb.cache")
    cache = RedisChunkCache(
        f"redis://:hunter2@127.0.0.1:{free_port()}/0",
        timeout_seconds=TIMEOUT,
        retry_seconds=RETRY,
    )
    calls = hammer(cache, rounds=4)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    assert "hunter2" not in warnings[0].getMessage()  # the URL is shown without its password
    stats = cache.stats()
    assert (stats["errors"], stats["skipped"]) == (1, calls - 1)
    assert stats["misses"] >= len(WANTED)
    assert cache.server_info()["reachable"] is False
