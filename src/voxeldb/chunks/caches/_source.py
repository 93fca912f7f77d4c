"""What a cache tier wraps: a :class:`ChunkSource` answers a :class:`Request` with chunks.

The backend's source (``voxeldb.chunks._reads.DatabaseSource``) is the innermost one; each
cache tier (``LRUTier``, ``RedisTier``) is a source that wraps another, zarr's
``WrapperStore``/``CacheStore`` idea. On the way in each tier adds to the request the
versions it holds of the positions asked for; the database then answers every stored
position with its current version, and sends the data only where that version is not the
one held. On the way out each tier fills in what it held at exactly the current version
and keeps what came from further in. So a tier never serves a chunk the database does not
hold at that very version, and a read is one database statement (docs/caching.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from voxeldb.chunks._geometry import Blocks, Key, Rect

__all__ = ["ChunkSource", "Found", "Request", "Written"]

Written = tuple[int, int, int, bytes | None, Blocks | None]
"""``(cx, cz, version, encoded, array)`` of a committed write; either form may be None."""


class Request:
    """One read, handed through the tiers.

    ``rects``: the rectangles the database statement covers (None: exactly ``keys``);
    ``keys``: every position asked for, which each tier looks up; ``known``: the versions
    held so far (by the reader itself, then by the tiers on the way in), whose data the
    database leaves out; ``encoded``: the codec's bytes are wanted, not arrays.
    """

    __slots__ = ("encoded", "keys", "known", "rects")

    def __init__(
        self,
        rects: Sequence[Rect] | None,
        keys: Sequence[Key],
        known: dict[Key, int] | None = None,
        *,
        encoded: bool = False,
    ) -> None:
        self.rects = rects
        self.keys = keys
        self.known: dict[Key, int] = {} if known is None else known
        self.encoded = encoded


class Found:
    """A source's answer: ``versions`` of every stored position asked for (that of the row
    read, which may be newer than one held); ``arrays`` (read-only) or, for an encoded
    request, ``encoded`` bytes, of the positions this source or those it wraps supplied.
    A position in ``versions`` without a value is held by whoever put its version in
    ``Request.known``. ``encoded`` also holds the bytes the arrays were decoded from."""

    __slots__ = ("arrays", "encoded", "versions")

    def __init__(self) -> None:
        self.arrays: dict[Key, Blocks] = {}
        self.encoded: dict[Key, bytes] = {}
        self.versions: dict[Key, int] = {}


class ChunkSource(Protocol):
    """Chunks by position; the store's cache tiers and its backend are sources."""

    def fetch(self, request: Request) -> Found:
        """The stored chunks of ``request`` (see :class:`Request` and :class:`Found`)."""
        ...

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        """After a commit: the new versions, so that the next reader skips the database.

        ``owned``: the arrays were made for this write and may be cached without a copy.
        """
        ...

    def discard(self, keys: Sequence[Key]) -> None:
        """Forget ``keys`` (any version): only frees memory, coherence never needs it."""
        ...
