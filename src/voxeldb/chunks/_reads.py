"""Read planning: regions in strips, the nearest-first stream in bands, the database source.

Every read asks the backend for the *versions* first (one statement per strip or band),
then hands ``{key: version}`` to the chunk source: the cache tiers answer what they hold at
exactly those versions and the :class:`DatabaseSource` reads the rest (docs/storage.md).
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from voxeldb.chunks._geometry import Blocks, Key, Rect, Row, VersionRow
from voxeldb.chunks.backends import Backend
from voxeldb.chunks.caches import ChunkSource, Found, Read, Written
from voxeldb.chunks.codec import decode_chunk
from voxeldb.errors import ChunkFormatError

__all__ = ["DatabaseSource", "Reader", "band_rects", "decode_rows"]

REGION_MAX_STRIPS = 16
"""Past this many strips a region reads all its versions in one query instead."""
STREAM_BAND_CHUNKS = 8192
"""Stream bands are sized to hold about this many stored chunks (bounded versions reply)."""


def decode_rows(
    rows: Sequence[Row], shape: tuple[int, int, int], world_id: uuid.UUID, *, readonly: bool = True
) -> list[Blocks]:
    """The arrays of backend rows; an unreadable or misshapen one is a ChunkFormatError."""
    arrays = []
    for cx, cz, _, data in rows:
        try:
            array = decode_chunk(data)
        except ChunkFormatError as exc:
            raise ChunkFormatError(
                f"stored chunk ({cx}, {cz}) of world {world_id} is unreadable: {exc}"
            ) from exc
        if array.shape != shape:
            raise ChunkFormatError(
                f"stored chunk ({cx}, {cz}) of world {world_id} has shape "
                f"{array.shape}, but the world's height is {shape[0]}"
            )
        if readonly:
            array.flags.writeable = False
        arrays.append(array)
    return arrays


class DatabaseSource:
    """The innermost :class:`ChunkSource`: the backend's rows, decoded (read-only)."""

    def __init__(self, backend: Backend, shape: tuple[int, int, int]) -> None:
        self.backend = backend
        self._shape = shape

    def fetch(self, wanted: Mapping[Key, int], read: Read, *, encoded: bool = False) -> Found:
        found = Found()
        if not wanted:
            return found
        conn = read.connection()
        if read.rect is not None and len(wanted) == read.count:
            # Nothing came from a cache: read the rectangle by range, not by key list.
            rows = self.backend.data_rect(conn, read.rect)
        else:
            rows = self.backend.data(conn, list(wanted))
        versions, blobs = found.versions, found.encoded
        for cx, cz, v, data in rows:
            versions[(cx, cz)] = v
            blobs[(cx, cz)] = data
        if not encoded:
            arrays = decode_rows(rows, self._shape, self.backend.world_id)
            found.arrays = {(row[0], row[1]): a for row, a in zip(rows, arrays, strict=True)}
        return found

    def written(self, items: Sequence[Written], *, owned: bool = False) -> None:
        """The database already holds what was written."""

    def discard(self, keys: Sequence[Key]) -> None:
        """Nothing to forget."""


class Reader:
    """A store's reads: versions from the backend, then the chunks from ``source``."""

    def __init__(self, backend: Backend, source: ChunkSource, batch_size: int) -> None:
        self.backend = backend
        self.source = source
        self.batch_size = batch_size

    def resolve(self, read: Read, versions: Sequence[VersionRow]) -> dict[Key, Blocks]:
        """The arrays of ``versions`` (current ``(cx, cz, version)``) from the source."""
        wanted = {(cx, cz): v for cx, cz, v in versions}
        read.count = len(wanted)
        return self.source.fetch(wanted, read).arrays

    def region(self, cx0: int, cz0: int, cx1: int, cz1: int) -> dict[Key, Blocks]:
        """Every stored chunk of the inclusive (checked) rectangle."""
        out: dict[Key, Blocks] = {}
        # Strips of whole columns of x, each at most ~batch_size positions: one versions
        # query and at most one data query per strip.
        width = cz1 - cz0 + 1
        step = max(1, self.batch_size // width)
        with self.backend.read_connection() as conn:
            if (cx1 - cx0) // step >= REGION_MAX_STRIPS:
                # A huge rectangle (mostly empty, or the result would not fit in memory):
                # strips would cost a query per few columns however few chunks are stored,
                # so read every version at once (the result holds their arrays anyway),
                # then the data in batches of keys.
                versions = self.backend.versions(conn, [(cx0, cz0, cx1, cz1)])
                for start in range(0, len(versions), self.batch_size):
                    batch = versions[start : start + self.batch_size]
                    _collect(out, batch, self.resolve(Read(lambda: conn), batch))
                return out
            x = cx0
            while x <= cx1:
                strip = (x, cz0, min(cx1, x + step - 1), cz1)
                versions = self.backend.versions(conn, [strip])
                if versions:
                    found = self.resolve(Read(lambda: conn, rect=strip), versions)
                    _collect(out, versions, found)
                x += step
        return out

    def stream(
        self, cx: int, cz: int, radius: int, encoded: bool
    ) -> Iterator[tuple[int, int, Any]]:
        """Stored chunks of the (checked) square, nearest first, read in growing bands."""
        # (d2, cx, cz, version, band it was read in), sorted
        pending: list[tuple[int, int, int, int, int]] = []
        inner = -1  # Chebyshev radius already read
        thickness = 2
        band = 0
        # Versions read in bands up to this one have waited while the consumer held a
        # yielded chunk: a write may have committed since, so they are read again.
        waited = -1
        while inner < radius:
            outer = min(radius, inner + thickness)
            rects = band_rects(cx, cz, inner, outer)
            with self.backend.read_connection() as conn:
                rows = self.backend.versions(conn, rects)
            band += 1
            pending.extend(((x - cx) ** 2 + (z - cz) ** 2, x, z, v, band) for x, z, v in rows)
            pending.sort()
            inner = outer
            # Any position not read yet is at Chebyshev distance > inner, hence Euclidean
            # distance >= inner + 1: everything nearer than that is final.
            limit = (inner + 1) ** 2 if inner < radius else math.inf
            cut = 0
            while cut < len(pending) and pending[cut][0] < limit:
                cut += 1
            ready, pending = pending[:cut], pending[cut:]
            for start in range(0, len(ready), self.batch_size):
                batch = ready[start : start + self.batch_size]
                refresh = min(item[4] for item in batch) <= waited
                yield from self._stream_batch(batch, encoded, refresh)
                waited = band
            # Grow the bands while they hold few stored chunks (a sparse world is crossed in
            # a few queries); keep about STREAM_BAND_CHUNKS rows per band where it is dense.
            area = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in rects)
            density = max(len(rows) / area, 1e-6)
            fits = int(STREAM_BAND_CHUNKS / density) // (8 * max(1, inner))
            thickness = max(1, min(2 * thickness, fits))

    def _stream_batch(
        self, batch: Sequence[tuple[int, int, int, int, int]], encoded: bool, refresh: bool
    ) -> Iterator[tuple[int, int, Any]]:
        versions = [(x, z, v) for _, x, z, v, _ in batch]
        if refresh:
            with self.backend.read_connection() as conn:
                current = self.backend.versions_of(conn, [(x, z) for x, z, _ in versions])
            now = {(x, z): v for x, z, v in current}
            # Same order; chunks deleted since are dropped.
            versions = [(x, z, now[(x, z)]) for x, z, _ in versions if (x, z) in now]
        with contextlib.ExitStack() as stack:
            # The connection is opened only if some chunk is not cached.
            read = Read(lambda: stack.enter_context(self.backend.read_connection()))
            if encoded:
                wanted = {(x, z): v for x, z, v in versions}
                found: Mapping[Key, Any] = self.source.fetch(wanted, read, encoded=True).encoded
            else:
                found = self.resolve(read, versions)
        for x, z, _ in versions:
            value = found.get((x, z))
            if value is not None:  # deleted since its version was read
                yield x, z, value


def _collect(
    out: dict[Key, Blocks], versions: Sequence[VersionRow], found: Mapping[Key, Blocks]
) -> None:
    for cx, cz, _ in versions:
        array = found.get((cx, cz))
        if array is not None:
            out[(cx, cz)] = array


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
