"""What a cache tier wraps: a :class:`ChunkSource` answers ``{key: version}`` with chunks.

The backend's source (``voxeldb.chunks._reads.DatabaseSource``) is the innermost one; each
cache tier (``LRUTier``, ``RedisTier``) is a source that wraps another, zarr's
``WrapperStore``/``CacheStore`` idea: it answers the keys it holds at *exactly* the version
asked for, asks the source it wraps for the rest, keeps what comes back, and returns both.
The versions always come from the database first (``ChunkStore`` reads them before it calls
``fetch``), so a tier can never serve a chunk the database does not hold (docs/caching.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from sqlalchemy import Connection

from voxeldb.chunks._geometry import Blocks, Key, Rect

__all__ = ["ChunkSource", "Found", "Read", "Written"]

Written = tuple[int, int, int, bytes | None, Blocks | None]
"""``(cx, cz, version, encoded, array)`` of a committed write; either form may be None."""


class Read:
    """One read's way to the database, handed through the tiers untouched (they never use it).

    ``connection()`` opens the connection on first use (a read all tiers answer needs
    none); ``rect`` is the rectangle the wanted keys came from, and ``count`` how many
    keys were wanted before any tier answered: a source asked for all of them may read the
    rectangle by range instead of by key list.
    """

    __slots__ = ("_conn", "_open", "count", "rect")

    def __init__(
        self,
        open_connection: Callable[[], Connection],
        *,
        rect: Rect | None = None,
        count: int = 0,
    ) -> None:
        self._open = open_connection
        self._conn: Connection | None = None
        self.rect = rect
        self.count = count

    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn


class Found:
    """What a source answered: ``arrays`` (read-only), or ``encoded`` bytes for an encoded
    fetch; ``versions`` the version of each (that of the row read, which may be newer than
    the one asked for); ``encoded`` also holds the bytes of arrays a tier got them with."""

    __slots__ = ("arrays", "encoded", "versions")

    def __init__(self) -> None:
        self.arrays: dict[Key, Blocks] = {}
        self.encoded: dict[Key, bytes] = {}
        self.versions: dict[Key, int] = {}


class ChunkSource(Protocol):
    """Chunks by key at given versions; the store's cache tiers and its backend are sources."""

    def fetch(self, wanted: Mapping[Key, int], read: Read, *, encoded: bool = False) -> Found:
        """The chunks of ``wanted`` (``{(cx, cz): version}``) that this source can give.

        With ``encoded`` the codec's bytes are wanted (``Found.encoded``), else arrays. A key
        left out is not stored (deleted since its version was read).
        """
        ...

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        """After a commit: the new versions, so that the next reader skips the database.

        ``owned``: the arrays were made for this write and may be cached without a copy.
        """
        ...

    def discard(self, keys: Sequence[Key]) -> None:
        """Forget ``keys`` (any version): only frees memory, coherence never needs it."""
        ...
