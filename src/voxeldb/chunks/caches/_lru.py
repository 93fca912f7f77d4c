"""In-process LRU of decoded chunks, bounded in bytes.

Entries are keyed by whatever hashable the store chooses (e.g. ``(world_id, cx, cz)``) and
tagged with the chunk's database ``version``: a lookup names the version it wants, and an
entry of any other version is a miss. Coherence therefore never depends on invalidation
(see ``docs/caching.md``).

Cached arrays are read-only and are handed out without a copy: a hot region read must not
cost a 200 MB memcpy. A caller who wants to edit one calls ``.copy()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from voxeldb.errors import ChunkFormatError, ConfigurationError

__all__ = ["ChunkLRU"]


class ChunkLRU:
    """A thread-safe least-recently-used cache of ``(key, version) -> read-only array``.

    ``max_bytes`` bounds the sum of ``array.nbytes`` of the entries; 0 disables the cache
    (every ``get`` is a miss, every ``put`` is dropped). An array larger than ``max_bytes``
    is never cached.

    ``put`` copies the array by default, so the caller's array stays writable and later
    writes to it cannot reach the cache. ``put(..., take_ownership=True)`` skips the copy
    for an array the caller has just made and will not write to again (e.g. the result of
    ``decode_chunk``): that array itself is marked read-only and cached.
    """

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ConfigurationError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[int, np.ndarray[Any, Any]]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, version: int) -> np.ndarray[Any, Any] | None:
        """The cached array of ``key`` at exactly ``version`` (read-only), else None."""
        with self._lock:
            return self._get_locked(key, version)

    def get_many(
        self, pairs: Iterable[tuple[Hashable, int]]
    ) -> dict[Hashable, np.ndarray[Any, Any]]:
        """The hits among ``(key, version)`` pairs, as ``{key: read-only array}``."""
        found: dict[Hashable, np.ndarray[Any, Any]] = {}
        with self._lock:
            for key, version in pairs:
                array = self._get_locked(key, version)
                if array is not None:
                    found[key] = array
        return found

    def _get_locked(self, key: Hashable, version: int) -> np.ndarray[Any, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return None
        cached_version, array = entry
        if cached_version != version:
            self._misses += 1
            # Versions are random (not ordered): the entry is freed, and the row the asker
            # now fetches from the database (its current version) takes its place.
            del self._entries[key]
            self._bytes -= array.nbytes
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return array

    def put(
        self,
        key: Hashable,
        version: int,
        array: np.ndarray[Any, Any],
        *,
        take_ownership: bool = False,
    ) -> None:
        """Cache ``array`` as ``key`` at ``version``, replacing any entry of ``key``."""
        self.put_many([(key, version, array)], take_ownership=take_ownership)

    def put_many(
        self,
        items: Iterable[tuple[Hashable, int, np.ndarray[Any, Any]]],
        *,
        take_ownership: bool = False,
    ) -> None:
        """``put`` each ``(key, version, array)``; copies are made outside the lock."""
        if self._max_bytes == 0:
            return
        prepared: list[tuple[Hashable, int, np.ndarray[Any, Any] | None]] = []
        for key, version, array in items:
            if not isinstance(array, np.ndarray):
                raise ChunkFormatError(
                    f"ChunkLRU.put needs a numpy array, got {type(array).__name__}"
                )
            if array.nbytes > self._max_bytes:
                # Too big to cache, but any older entry of this key is now obsolete.
                prepared.append((key, version, None))
                continue
            prepared.append((key, version, _frozen(array, take_ownership)))
        with self._lock:
            for key, version, frozen in prepared:
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1].nbytes
                if frozen is None:
                    continue
                self._entries[key] = (version, frozen)
                self._bytes += frozen.nbytes
            while self._bytes > self._max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                self._evictions += 1

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (any version); no error if it is not cached."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes

    def clear(self) -> None:
        """Forget every entry (the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        """``hits``, ``misses``, ``entries``, ``bytes``, ``max_bytes``, ``evictions``."""
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "evictions": self._evictions,
            }


def _frozen(array: np.ndarray[Any, Any], take_ownership: bool) -> np.ndarray[Any, Any]:
    frozen = array if take_ownership else array.copy()
    frozen.flags.writeable = False
    return frozen
