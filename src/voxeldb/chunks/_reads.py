"""Read planning: regions in strips, the nearest-first stream in bands, the database source.

A read is one :class:`~voxeldb.chunks.caches.Request` per batch: the cache tiers add the
versions they hold of its positions, and the :class:`DatabaseSource` reads, in one
statement, the current version of every stored position with its data where that version
is not held (docs/storage.md). An area too large to list its positions (a huge, mostly
empty rectangle) reads its versions first, then the chunks by key, batch by batch.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from voxeldb.chunks._geometry import Blocks, Key, Rect, Row
from voxeldb.chunks.backends import Backend
from voxeldb.chunks.caches import ChunkLRU, ChunkSource, Found, Request, Written
from voxeldb.chunks.codec import decode_chunk
from voxeldb.errors import ChunkFormatError

__all__ = ["DatabaseSource", "Decoder", "Reader", "band_rects", "decode_rows"]

REGION_MAX_STRIPS = 16
"""Past this many strips a region reads all its versions in one query instead."""
LIST_MAX = 4096
"""Up to this many positions a read lists them (the caches look each up, and the database
answers versions and data in one statement); a larger area reads its versions first."""

# (d², cx, cz, version, epoch read in, value or None when only the version was read)
_Item = tuple[int, int, int, int, int, Any]


class Decoder:
    """A world's decode of stored bytes: read-only arrays of the world's shape; an unreadable
    or misshapen chunk is a ChunkFormatError naming it.

    ``pooled`` decodes write into the LRU's recycled memory: a burst of fresh arrays (a
    region, a band) costs page faults, while malloc hands one array the memory it just
    freed, so a lone chunk is decoded as it is.
    """

    def __init__(
        self, shape: tuple[int, int, int], world_id: uuid.UUID, lru: ChunkLRU | None = None
    ) -> None:
        self.shape = shape
        self.world_id = world_id
        self._lru = lru

    def __call__(
        self, key: Key, data: bytes | memoryview, *, readonly: bool = True, pooled: bool = True
    ) -> Blocks:
        cx, cz = key
        try:
            if self._lru is not None and readonly and pooled:
                array = self._lru.decode(data, self.shape)
            else:
                array = decode_chunk(data)
                array.flags.writeable = not readonly
        except ChunkFormatError as exc:
            raise ChunkFormatError(
                f"stored chunk ({cx}, {cz}) of world {self.world_id} is unreadable: {exc}"
            ) from exc
        if array.shape != self.shape:
            raise ChunkFormatError(
                f"stored chunk ({cx}, {cz}) of world {self.world_id} has shape "
                f"{array.shape}, but the world's height is {self.shape[0]}"
            )
        return array


def decode_rows(
    rows: Sequence[Row], shape: tuple[int, int, int], world_id: uuid.UUID, *, readonly: bool = True
) -> list[Blocks]:
    """The arrays of backend rows; an unreadable or misshapen one is a ChunkFormatError."""
    decode = Decoder(shape, world_id)
    return [decode((cx, cz), data, readonly=readonly) for cx, cz, _, data in rows]


class DatabaseSource:
    """The innermost :class:`ChunkSource`: one statement of the backend per request, its
    data decoded by ``decode`` unless the request is encoded."""

    def __init__(self, backend: Backend, decode: Decoder) -> None:
        self.backend = backend
        self._decode = decode

    def fetch(self, request: Request) -> Found:
        found = Found()
        if not request.keys:
            return found
        backend = self.backend
        rows = backend.read(
            lambda handle: backend.rows(handle, request.rects, request.keys, request.known)
        )
        versions, blobs = found.versions, found.encoded
        for cx, cz, version, data in rows:
            versions[(cx, cz)] = version
            if data is not None:
                blobs[(cx, cz)] = data
        if not request.encoded:
            decode, pooled = self._decode, len(blobs) > 1
            found.arrays = {key: decode(key, data, pooled=pooled) for key, data in blobs.items()}
        return found

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        """The database already holds what was written."""

    def discard(self, keys: Sequence[Key]) -> None:
        """Nothing to forget."""


class Reader:
    """A store's reads: a request per batch to ``source`` (the tiers, then the database)."""

    def __init__(self, backend: Backend, source: ChunkSource, batch_size: int) -> None:
        self.backend = backend
        self.source = source
        self.batch_size = batch_size

    def get(self, cx: int, cz: int) -> Blocks | None:
        """Chunk ``(cx, cz)`` (checked), or None: one statement when it is not cached."""
        return self.source.fetch(Request(None, [(cx, cz)])).arrays.get((cx, cz))

    def region(self, cx0: int, cz0: int, cx1: int, cz1: int) -> dict[Key, Blocks]:
        """Every stored chunk of the inclusive (checked) rectangle."""
        out: dict[Key, Blocks] = {}
        # Strips of whole columns of x, each at most ~batch_size positions: one statement
        # per strip, versions and data together.
        width = cz1 - cz0 + 1
        step = max(1, self.batch_size // width)
        if (cx1 - cx0) // step >= REGION_MAX_STRIPS or width > LIST_MAX:
            # A huge rectangle (mostly empty, or the result would not fit in memory):
            # strips would cost a statement per few columns however few chunks are stored,
            # so read every version at once (the result holds their arrays anyway), then
            # the chunks by key, a batch at a time.
            stored = self._versions([(cx0, cz0, cx1, cz1)])
            for start in range(0, len(stored), self.batch_size):
                keys = [(x, z) for x, z, _ in stored[start : start + self.batch_size]]
                out.update(self.source.fetch(Request(None, keys)).arrays)
            return out
        x = cx0
        while x <= cx1:
            x1 = min(cx1, x + step - 1)
            keys = [(i, j) for i in range(x, x1 + 1) for j in range(cz0, cz1 + 1)]
            out.update(self.source.fetch(Request([(x, cz0, x1, cz1)], keys)).arrays)
            x = x1 + 1
        return out

    def _versions(self, rects: Sequence[Rect]) -> list[tuple[int, int, int]]:
        backend = self.backend
        return backend.read(lambda handle: backend.versions(handle, rects))

    def stream(
        self, cx: int, cz: int, radius: int, encoded: bool
    ) -> Iterator[tuple[int, int, Any]]:
        """Stored chunks of the (checked) square, nearest first, read in growing bands."""
        pending: list[_Item] = []
        inner = -1  # Chebyshev radius already read
        thickness = 0
        density = 1.0
        # Bumped whenever the caller was handed chunks: anything read before may have been
        # replaced while it held the stream, so it is read again (at the price of its
        # version only, when it is still the same) before it is handed out.
        epoch = 0
        while inner < radius:
            outer = self._next_outer(inner, radius, thickness, density)
            rects = band_rects(cx, cz, inner, outer)
            area = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in rects)
            items = self._read_band(cx, cz, rects, area, encoded, epoch)
            density = len(items) / area
            thickness = outer - inner
            pending.extend(items)
            pending.sort()
            inner = outer
            # Any position not read yet is at Chebyshev distance > inner, hence Euclidean
            # distance >= inner + 1: everything nearer than that is final.
            limit = (inner + 1) ** 2 if inner < radius else math.inf
            cut = bisect.bisect_left(pending, (limit,))
            ready, pending = pending[:cut], pending[cut:]
            for start in range(0, len(ready), self.batch_size):
                yield from self._stream_batch(
                    ready[start : start + self.batch_size], encoded, epoch
                )
                epoch += 1

    def _next_outer(self, inner: int, radius: int, thickness: int, density: float) -> int:
        """The next band's outer radius: the 3x3 centre first (the first chunk comes after
        one small statement), then bands expected to hold about ``batch_size`` stored
        chunks, growing at most twofold past that while they come back sparse."""
        if inner < 0:
            return min(radius, 1)
        ring = (2 * inner + 1) ** 2

        def thickness_for(positions: float) -> int:
            return (math.isqrt(int(min(positions, 1e15)) + ring) - 1) // 2 - inner

        dense = thickness_for(self.batch_size)
        wanted = thickness_for(self.batch_size / max(density, 1e-9))
        return min(radius, inner + max(1, min(wanted, max(dense, 2 * thickness))))

    def _read_band(
        self, cx: int, cz: int, rects: Sequence[Rect], area: int, encoded: bool, epoch: int
    ) -> list[_Item]:
        def item(x: int, z: int, version: int, value: Any) -> _Item:
            return ((x - cx) ** 2 + (z - cz) ** 2, x, z, version, epoch, value)

        if area > LIST_MAX:
            # Sparse: the versions now, the chunks batch by batch as they are handed out.
            return [item(x, z, v, None) for x, z, v in self._versions(rects)]
        keys = [(x, z) for r in rects for x in range(r[0], r[2] + 1) for z in range(r[1], r[3] + 1)]
        found = self.source.fetch(Request(rects, keys, encoded=encoded))
        values: Mapping[Key, Any] = found.encoded if encoded else found.arrays
        return [item(x, z, v, values.get((x, z))) for (x, z), v in found.versions.items()]

    def _stream_batch(
        self, batch: Sequence[_Item], encoded: bool, epoch: int
    ) -> Iterator[tuple[int, int, Any]]:
        again = [it for it in batch if it[5] is None or it[4] < epoch]
        current: dict[Key, Any] = {}
        if again:
            # What the stream holds is sent as known: only what changed comes back.
            known = {(it[1], it[2]): it[3] for it in again if it[5] is not None}
            keys = [(it[1], it[2]) for it in again]
            found = self.source.fetch(Request(None, keys, known, encoded=encoded))
            values: Mapping[Key, Any] = found.encoded if encoded else found.arrays
            held = {(it[1], it[2]): it[5] for it in again}
            for key, version in found.versions.items():
                value = values.get(key)
                if value is None and known.get(key) == version:
                    value = held[key]
                current[key] = value
        for _, x, z, _, read_in, value in batch:
            if value is None or read_in < epoch:
                value = current.get((x, z))  # None: deleted since its version was read
            if value is not None:
                yield x, z, value


def band_rects(cx: int, cz: int, inner: int, outer: int) -> list[Rect]:
    """The positions at Chebyshev distance in ``(inner, outer]`` of ``(cx, cz)``, as rects."""
    if inner < 0:
        return [(cx - outer, cz - outer, cx + outer, cz + outer)]
    return [
        (cx - outer, cz - outer, cx + outer, cz - inner - 1),  # bottom strip (full width)
        (cx - outer, cz + inner + 1, cx + outer, cz + outer),  # top strip (full width)
        (cx - outer, cz - inner, cx - inner - 1, cz + inner),  # left
        (cx + inner + 1, cz - inner, cx + outer, cz + inner),  # right
    ]
