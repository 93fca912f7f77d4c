"""In-process LRU of chunks (decoded arrays and their encoded bytes), bounded in bytes.

Entries are keyed by whatever hashable the store chooses (e.g. ``(world_id, cx, cz)``) and
tagged with the chunk's database ``version``: a lookup names the version it wants, and an
entry of any other version is a miss. Coherence therefore never depends on invalidation
(see ``docs/caching.md``).

Cached arrays are read-only and are handed out without a copy: a hot region read must not
cost a 200 MB memcpy. A caller who wants to edit one calls ``.copy()``.

An entry may hold the codec's bytes beside (or instead of) the array: the encoded stream
(``stream(..., encoded=True)``) is served from them, and a decoded read of a bytes-only
entry decodes without a database trip.

Memory is recycled: an array that leaves the cache while nobody else holds it (its
reference count says so) is kept, within ``max_bytes``, and the next decode writes into it
(:meth:`ChunkLRU.decode`). A cold read then costs the decode, not the page faults of fresh
memory (about half of it, docs/storage.md). An array still held anywhere is never reused.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from voxeldb.chunks.codec import decode_chunk
from voxeldb.errors import ChunkFormatError, ConfigurationError

__all__ = ["ChunkLRU", "Held"]

Array = np.ndarray[Any, Any]
Held = tuple[int, Array | None, bytes | None]
"""What :meth:`ChunkLRU.peek_many` answers per key: ``(version, array, encoded)``."""

_DTYPES: dict[int, np.dtype[Any]] = {2: np.dtype(np.uint16), 4: np.dtype(np.uint32)}
_DTYPE_OFFSET = 5
"""Byte of the chunk frame's header holding the item size (docs/chunk-format.md)."""
_TAKE_TRIES = 64
"""Entries :meth:`ChunkLRU.take` evicts at most looking for memory it may reuse."""


class _Entry:
    __slots__ = ("array", "blob", "size", "version")

    def __init__(self, version: int, array: Array | None, blob: bytes | None) -> None:
        self.version = version
        self.array = array
        self.blob = blob
        self.size = (0 if array is None else array.nbytes) + (0 if blob is None else len(blob))


class ChunkLRU:
    """A thread-safe least-recently-used cache of ``(key, version) -> read-only array`` (and
    the chunk's encoded bytes).

    ``max_bytes`` bounds the sum of the entries' ``array.nbytes`` and ``len(bytes)`` plus the
    memory kept for reuse; 0 disables the cache (every ``get`` is a miss, every ``put`` is
    dropped). An entry larger than ``max_bytes`` is never cached.

    ``put`` copies the array by default, so the caller's array stays writable and later
    writes to it cannot reach the cache. ``put(..., take_ownership=True)`` skips the copy
    for an array the caller has just made and will not write to again (e.g. the result of
    ``decode_chunk``): that array itself is marked read-only and cached.
    """

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ConfigurationError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._free: dict[tuple[tuple[int, ...], str], list[Array]] = {}
        self._free_bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._reused = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    # -- lookups ------------------------------------------------------------------------

    def get(self, key: Hashable, version: int) -> Array | None:
        """The cached array of ``key`` at exactly ``version`` (read-only), else None."""
        with self._lock:
            return self._get_locked(key, version)

    def get_many(self, pairs: Iterable[tuple[Hashable, int]]) -> dict[Hashable, Array]:
        """The hits among ``(key, version)`` pairs, as ``{key: read-only array}``."""
        found: dict[Hashable, Array] = {}
        with self._lock:
            for key, version in pairs:
                array = self._get_locked(key, version)
                if array is not None:
                    found[key] = array
        return found

    def _get_locked(self, key: Hashable, version: int) -> Array | None:
        entry = self._entries.get(key)
        if entry is None or entry.array is None:
            self._misses += 1
            return None
        if entry.version != version:
            self._misses += 1
            # Versions are random (not ordered): the entry is freed, and the row the asker
            # now fetches from the database (its current version) takes its place.
            self._drop_locked(key)
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.array

    def writable_many(self, pairs: Iterable[tuple[Hashable, int]]) -> dict[Hashable, Array]:
        """Writable arrays of the chunks held at exactly these ``(key, version)`` pairs
        (hits only), for a writer that edits chunks it read (``set_blocks``): the cache's
        own array, taken out of the cache, where nobody else holds it (until the write has
        committed the cache holds no entry for it); else a copy, in recycled memory (fresh
        memory would cost a page fault per 4 KiB, more than the copy)."""
        taken: dict[Hashable, Array] = {}
        held: list[tuple[Hashable, Array]] = []
        with self._lock:
            for key, version in pairs:
                entry = self._entries.get(key)
                if entry is None or entry.version != version or entry.array is None:
                    continue
                self._hits += 1
                array, entry.array = entry.array, None
                if _reusable(array):
                    self._drop_locked(key)
                    array.flags.writeable = True
                    taken[key] = array
                else:  # a reader holds it, or a view of it
                    entry.array = array
                    self._entries.move_to_end(key)
                    held.append((key, array))
        for key, array in held:
            copy = self.take(array.shape, array.dtype)
            np.copyto(copy, array)
            taken[key] = copy
        return taken

    def peek_many(self, keys: Iterable[Hashable], *, encoded: bool = False) -> dict[Hashable, Held]:
        """What is held of ``keys`` at whatever version, for a reader that asks the database
        which versions are current (:meth:`confirm` then counts the hits). ``encoded``: only
        entries holding the encoded bytes, else those holding an array or the bytes."""
        held: dict[Hashable, Held] = {}
        with self._lock:
            entries = self._entries
            for key in keys:
                entry = entries.get(key)
                if entry is not None and (entry.blob is not None or not encoded):
                    held[key] = (entry.version, entry.array, entry.blob)
        return held

    def confirm(self, hits: Sequence[Hashable], misses: int) -> None:
        """Count ``hits`` (keys :meth:`peek_many` gave at their current version) as recently
        used, and ``misses`` lookups that found nothing current."""
        with self._lock:
            self._confirm_locked(hits, misses)

    def _confirm_locked(self, hits: Sequence[Hashable], misses: int) -> None:
        entries = self._entries
        for key in hits:
            if key in entries:
                entries.move_to_end(key)
        self._hits += len(hits)
        self._misses += misses

    # -- updates ------------------------------------------------------------------------

    def put(
        self, key: Hashable, version: int, array: Array, *, take_ownership: bool = False
    ) -> None:
        """Cache ``array`` as ``key`` at ``version``, replacing any entry of ``key``."""
        self.put_many([(key, version, array)], take_ownership=take_ownership)

    def put_many(
        self, items: Iterable[tuple[Hashable, int, Array]], *, take_ownership: bool = False
    ) -> None:
        """``put`` each ``(key, version, array)``; copies are made outside the lock."""
        self.keep_many(
            ((key, version, array, None) for key, version, array in items),
            owned=take_ownership,
            merge=False,
        )

    def keep_many(
        self,
        items: Iterable[tuple[Hashable, int, Array | None, bytes | None]],
        *,
        owned: bool = False,
        merge: bool = True,
        hits: Sequence[Hashable] = (),
        misses: int = 0,
    ) -> None:
        """Cache ``(key, version, array, encoded)`` items (either form may be None).

        ``owned`` as ``put``'s ``take_ownership``. With ``merge`` an entry of the same key
        and version keeps the form the item lacks (an array gains its bytes and the other
        way round); otherwise the item replaces it. ``hits`` and ``misses`` as
        :meth:`confirm`'s, under the same lock.
        """
        if self._max_bytes == 0:
            return
        limit = self._max_bytes
        prepared: list[tuple[Hashable, int, Array | None, bytes | None]] = []
        for key, version, array, blob in items:
            size = 0
            if array is not None:
                if not isinstance(array, np.ndarray):
                    raise ChunkFormatError(
                        f"ChunkLRU.put needs a numpy array, got {type(array).__name__}"
                    )
                size = array.nbytes
                if not owned:
                    array = array.copy()
                array.flags.writeable = False
            if blob is not None:
                if type(blob) is not bytes:
                    blob = bytes(blob)
                size += len(blob)
            if size > limit:
                # Too big to cache, but any older entry of this key is now obsolete.
                array = blob = None
            prepared.append((key, version, array, blob))
        with self._lock:
            if hits or misses:
                self._confirm_locked(hits, misses)
            for key, version, array, blob in prepared:
                old = self._entries.get(key)
                if old is not None:
                    if merge and old.version == version:
                        # Same version, same chunk: what the entry has stays (a reader may
                        # hold its array), and it gains the form it lacked.
                        if (old.array is not None or array is None) and (
                            old.blob is not None or blob is None
                        ):
                            continue
                        if old.array is not None:
                            array, old.array = old.array, None
                        if old.blob is not None:
                            blob = old.blob
                    self._drop_locked(key)
                if array is None and blob is None:
                    continue
                entry = _Entry(version, array, blob)
                self._entries[key] = entry
                self._bytes += entry.size
            self._trim_locked()

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (any version); no error if it is not cached."""
        with self._lock:
            if key in self._entries:
                self._drop_locked(key)

    def clear(self, *, release: bool = False) -> None:
        """Forget every entry (the counters are kept). Their memory stays for the next
        decodes (within ``max_bytes``) unless ``release``, which also frees that."""
        with self._lock:
            for key in list(self._entries):
                self._drop_locked(key)
            if release:
                self._free.clear()
                self._free_bytes = 0

    def stats(self) -> dict[str, int]:
        """``hits``, ``misses``, ``entries``, ``bytes`` (of the entries), ``max_bytes``,
        ``evictions``, ``pooled`` (bytes kept for reuse), ``reused`` (arrays decoded into
        memory that was kept)."""
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "evictions": self._evictions,
                "pooled": self._free_bytes,
                "reused": self._reused,
            }

    # -- memory for decodes ---------------------------------------------------------------

    def decode(self, data: bytes | memoryview, shape: tuple[int, int, int]) -> Array:
        """``decode_chunk(data)`` as a read-only array, written into recycled memory when the
        chunk has ``shape``. Errors are the codec's (a chunk of another shape is decoded as
        it is: the caller checks the shape)."""
        dtype = _DTYPES.get(data[_DTYPE_OFFSET]) if len(data) > _DTYPE_OFFSET else None
        if dtype is None or self._max_bytes == 0:
            array = decode_chunk(data)
        else:
            out = self.take(shape, dtype)
            try:
                array = decode_chunk(data, out=out)
            except ChunkFormatError:
                self.give_back(out)
                # Decoded on its own, it says what is wrong (or has another shape).
                array = decode_chunk(data)
        array.flags.writeable = False
        return array

    def take(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
        """A writable C-contiguous array of ``shape`` and ``dtype`` with undefined contents:
        recycled memory, or the least recently used entries' when the cache is full (they
        would be evicted by the next put anyway), else new memory."""
        need = math.prod(shape) * dtype.itemsize
        spec = (tuple(shape), dtype.str)
        with self._lock:
            free = self._free.get(spec)
            if free:
                array = free.pop()
                self._free_bytes -= array.nbytes
                self._reused += 1
                array.flags.writeable = True
                return array
            tries = 0
            while (
                self._entries
                and tries < _TAKE_TRIES
                and self._bytes + self._free_bytes + need > self._max_bytes
            ):
                tries += 1
                key, entry = next(iter(self._entries.items()))
                oldest, entry.array = entry.array, None
                self._drop_locked(key)
                self._evictions += 1
                if oldest is not None and _spec(oldest) == spec and _reusable(oldest):
                    self._reused += 1
                    oldest.flags.writeable = True
                    return oldest
                if oldest is not None:
                    self._recycle_locked(oldest)
                del oldest
        return np.empty(shape, dtype)

    def give_back(self, array: Array) -> None:
        """Return an array from :meth:`take` that was not used."""
        with self._lock:
            self._recycle_locked(array)
            self._trim_locked()

    # -- internals (lock held) ------------------------------------------------------------

    def _drop_locked(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
        array, entry.array = entry.array, None
        if array is not None:
            self._recycle_locked(array)

    def _recycle_locked(self, array: Array) -> None:
        # Called with the caller's only reference (else the array is still someone's).
        if self._bytes + self._free_bytes + array.nbytes <= self._max_bytes and _reusable(
            array, extra=1
        ):
            self._free.setdefault(_spec(array), []).append(array)
            self._free_bytes += array.nbytes

    def _trim_locked(self) -> None:
        while self._bytes + self._free_bytes > self._max_bytes and self._free_bytes:
            spec = max(self._free, key=lambda s: len(self._free[s]))
            self._free_bytes -= self._free[spec].pop().nbytes
            if not self._free[spec]:
                del self._free[spec]
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
            self._evictions += 1


def _spec(array: Array) -> tuple[tuple[int, ...], str]:
    return (array.shape, array.dtype.str)


def _reusable(array: Array, *, extra: int = 0) -> bool:
    """Whether ``array``'s memory may be written again: it owns that memory (a view's
    memory is its base's, which views of the view reference instead of the view) and nobody
    but the caller holds it (nor a view of it, whose base it is): the caller's one
    reference, this function's argument and getrefcount's own, plus ``extra`` frames passing
    it along."""
    return array.base is None and array.flags.c_contiguous and sys.getrefcount(array) <= 3 + extra
