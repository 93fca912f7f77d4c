"""The cache behind ``get_world_settings``: Redis when ``REDIS_URL`` is set, else in-process.

Redis is optional in every sense: a short socket timeout, and when it fails the settings
come from the database (one warning logged, Redis tried again after
``redis_retry_seconds``). An invalidation that could not reach Redis is retried on the next
successful contact, and entries expire after ``redis_ttl_seconds`` regardless.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from typing import Any

import redis

from voxeldb._settings import Settings, get_settings

__all__ = ["LOCAL_TTL_SECONDS", "SettingsCache", "get_cache", "reset_cache"]

log = logging.getLogger("voxeldb.services")

LOCAL_TTL_SECONDS = 30.0
"""How long another process's settings change can go unseen without Redis."""


class SettingsCache:
    def __init__(self, settings: Settings) -> None:
        self._prefix = settings.redis_key_prefix
        self._ttl = settings.redis_ttl_seconds
        self._retry = settings.redis_retry_seconds
        self._local: dict[uuid.UUID, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._pending_deletes: set[str] = set()
        self._down_until = 0.0
        self._warned = False
        self._redis: Any = None
        if settings.redis_url:
            self._redis = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
                retry_on_timeout=False,
            )

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    def key(self, world_id: uuid.UUID) -> str:
        return f"{self._prefix}:world:{world_id}:settings"

    def _redis_call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command; on failure note Redis as down and return None."""
        if self._redis is None or time.monotonic() < self._down_until:
            return None
        try:
            if self._pending_deletes:
                keys = list(self._pending_deletes)
                self._redis.delete(*keys)
                self._pending_deletes.difference_update(keys)
            result = getattr(self._redis, fn)(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._retry
            if not self._warned:
                self._warned = True
                log.warning("Redis unavailable for world settings, using the database: %s", exc)
            if fn == "delete":
                self._pending_deletes.update(str(a) for a in args)
            return None
        if self._warned:
            self._warned = False
            log.info("Redis is back for world settings")
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
            entry = self._local.get(world_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return copy.deepcopy(entry[1])

    def put(self, world_id: uuid.UUID, value: dict[str, Any]) -> None:
        if self._redis is not None:
            self._redis_call("set", self.key(world_id), json.dumps(value), ex=self._ttl or None)
            return
        with self._lock:
            self._local[world_id] = (time.monotonic() + LOCAL_TTL_SECONDS, copy.deepcopy(value))

    def invalidate(self, world_id: uuid.UUID) -> None:
        with self._lock:
            self._local.pop(world_id, None)
        if self._redis is not None:
            self._redis_call("delete", self.key(world_id))

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


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
