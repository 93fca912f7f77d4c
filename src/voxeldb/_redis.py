"""The one Redis client factory and the one circuit breaker (fail-open).

Redis is an optimisation, never a dependency. A client from :func:`redis_client` makes one
attempt with short timeouts (redis-py 8 would otherwise wait 5 s and retry 10 times with
backoff: a hung server would stall every call for a minute). :class:`CircuitBreaker` runs
each call: on a Redis or socket error it logs one warning per outage, answers None, and
leaves Redis alone for ``retry_seconds``, so a hung server costs one timeout per retry
window, not one per call; the first call that succeeds again logs the recovery.

Every key voxeldb writes starts with :func:`database_namespace`: the configured prefix and a
tag of the database's address, so databases sharing one Redis (a copy keeps its world ids)
never read each other's entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from voxeldb._text import safe_url
from voxeldb.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "FAILURES",
    "CircuitBreaker",
    "close_quietly",
    "database_namespace",
    "database_tag",
    "redis_client",
]

FAILURES: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
"""What counts as Redis failing (as opposed to a bug in the caller)."""

_T = TypeVar("_T")


def database_tag(url: URL) -> str:
    """A short tag of a database's address (no password, no query; SQLite paths absolute)."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=os.path.abspath(url.database))
    where = url.set(password=None, query={}).render_as_string(hide_password=True)
    return hashlib.sha1(where.encode()).hexdigest()[:10]


def database_namespace(prefix: str, url: URL) -> str:
    """``{prefix}:{database tag}``: the start of every Redis key voxeldb writes for ``url``."""
    return f"{prefix}:{database_tag(url)}"


def redis_client(url: str, *, timeout_seconds: float) -> redis.Redis:
    """A client for ``url``: one attempt per call, ``timeout_seconds`` to connect and to read.

    A malformed URL is a :class:`~voxeldb.errors.ConfigurationError` (password hidden).
    """
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {safe_url(url)!r}: {exc}") from exc


class CircuitBreaker:
    """Runs Redis calls; after a failure, skips them for ``retry_seconds`` (fail-open).

    ``what`` ("chunks", "world settings") goes into the log lines, with ``url`` (shown
    without its password). Thread-safe: while Redis is down exactly one caller per retry
    window probes it; the others skip.
    """

    def __init__(
        self, url: str, *, what: str, retry_seconds: float, logger: logging.Logger
    ) -> None:
        self.display_url = safe_url(url)
        self.what = what
        self.retry_seconds = float(retry_seconds)
        self._logger = logger
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self.errors = 0
        """Calls that failed."""
        self.skipped = 0
        """Calls not made because they fell inside a retry window."""

    @property
    def state(self) -> Literal["up", "down"]:
        """``"down"`` from a failure until a call succeeds again."""
        return "down" if self._down else "up"

    def call(self, fn: Callable[[], _T], *, force: bool = False) -> _T | None:
        """``fn()``, or None when Redis failed or is inside its retry window.

        ``force`` calls even inside a retry window (a health check wants the truth now).
        """
        with self._lock:
            if self._down and not force:
                now = time.monotonic()
                if now < self._retry_at:
                    self.skipped += 1
                    return None
                # This caller probes; the others keep skipping until it has an answer,
                # so a hung server costs one timeout per window, not one per thread.
                self._retry_at = now + self.retry_seconds
        try:
            result = fn()
        except FAILURES as exc:
            with self._lock:
                self.errors += 1
                self._retry_at = time.monotonic() + self.retry_seconds
                first = not self._down
                self._down = True
            if first:
                self._logger.warning(
                    "Redis at %s is unavailable (%s: %s); serving %s from the database and "
                    "retrying every %g s",
                    self.display_url,
                    type(exc).__name__,
                    exc,
                    self.what,
                    self.retry_seconds,
                )
            return None
        with self._lock:
            back = self._down
            self._down = False
        if back:
            self._logger.info("Redis is back for %s (%s)", self.what, self.display_url)
        return result


def close_quietly(client: redis.Redis) -> None:
    """Close ``client``'s connection pool; no error if Redis is gone."""
    with contextlib.suppress(*FAILURES):
        client.close()
