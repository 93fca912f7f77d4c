"""The cache behind ``get_world_settings``: Redis when ``REDIS_URL`` is set, else in-process.

Redis is optional in every sense: the one client factory and circuit breaker
(``voxeldb._redis``) give a short socket timeout, and when Redis fails the settings come from
the database (one warning logged, Redis tried again after ``redis_retry_seconds``, the
recovery logged). An invalidation that could not reach Redis is retried on the next
successful contact, and entries expire after ``redis_ttl_seconds`` regardless.

Keys are ``{prefix}:{database tag}:world:{id}:settings`` (``voxeldb._redis.database_namespace``,
the chunk tier's too): a copied database keeps its world ids, and two databases sharing one
Redis must not read each other's settings. The database is the one ``voxeldb.meta``'s
sessions use now (``get_engine()``).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from typing import Any

from voxeldb._redis import CircuitBreaker, close_quietly, database_namespace, redis_client
from voxeldb._settings import Settings, get_settings
from voxeldb.meta import get_engine

__all__ = ["LOCAL_TTL_SECONDS", "SettingsCache", "get_cache", "reset_cache"]

log = logging.getLogger("voxeldb.services")

LOCAL_TTL_SECONDS = 30.0
"""How long another process's settings change can go unseen without Redis."""


class SettingsCache:
    def __init__(self, settings: Settings) -> None:
        self._prefix = settings.redis_key_prefix
        self._ttl = settings.redis_ttl_seconds
        self._retry = settings.redis_retry_seconds
        self._local: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._pending_deletes: set[str] = set()
        self._redis: Any = None
        self._breaker: CircuitBreaker | None = None
        if settings.redis_url:
            self._redis = redis_client(
                settings.redis_url, timeout_seconds=settings.redis_timeout_seconds
            )
            self._breaker = CircuitBreaker(
                settings.redis_url,
                what="world settings",
                retry_seconds=self._retry,
                logger=log,
            )

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    def key(self, world_id: uuid.UUID) -> str:
        """The key of a world's settings in the database ``voxeldb.meta`` uses now."""
        return f"{database_namespace(self._prefix, get_engine().url)}:world:{world_id}:settings"

    def _redis_call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command through the breaker; None when Redis failed or is resting.

        A delete that could not be made is remembered and made before the next command.
        """
        if self._redis is None or self._breaker is None:
            return None

        def run() -> Any:
            if self._pending_deletes:
                keys = list(self._pending_deletes)
                self._redis.delete(*keys)
                self._pending_deletes.difference_update(keys)
            return getattr(self._redis, fn)(*args, **kwargs)

        result = self._breaker.call(run)
        if result is None and fn == "delete":
            self._pending_deletes.update(str(a) for a in args)
        return result

    def get(self, world_id: uuid.UUID) -> dict[str, Any] | None:
        if self._redis is not None:
            raw = self._redis_call("get", self.key(world_id))
            if raw is None:
                return None
            try:
                value = json.loads(raw)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
        with self._lock:
            entry = self._local.get(self.key(world_id))
        if entry is None or entry[0] < time.monotonic():
            return None
        return copy.deepcopy(entry[1])

    def put(self, world_id: uuid.UUID, value: dict[str, Any]) -> None:
        if self._redis is not None:
            self._redis_call("set", self.key(world_id), json.dumps(value), ex=self._ttl or None)
            return
        with self._lock:
            self._local[self.key(world_id)] = (
                time.monotonic() + LOCAL_TTL_SECONDS,
                copy.deepcopy(value),
            )

    def invalidate(self, world_id: uuid.UUID) -> None:
        key = self.key(world_id)
        with self._lock:
            self._local.pop(key, None)
        if self._redis is not None:
            self._redis_call("delete", key)

    def close(self) -> None:
        if self._redis is not None:
            close_quietly(self._redis)


_cache: SettingsCache | None = None
_cache_lock = threading.Lock()


def get_cache() -> SettingsCache:
    """The process's settings cache, made from the settings on first use."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = SettingsCache(get_settings())
        return _cache


def reset_cache() -> None:
    """Drop the cache; the next use reads ``REDIS_URL`` and the other settings again."""
    global _cache
    with _cache_lock:
        old, _cache = _cache, None
    if old is not None:
        old.close()
