"""Chunk summaries: what a top-down map needs of a chunk, kept beside it in ``world_chunks``.

A kernel module (numpy and lz4 only): the chunk store writes summaries and ``voxeldb map``
reads them without importing the store.

Per column (256 of them, ``[z, x]`` order) a summary holds the **top** non-air block (its
state id and local y index) and the **under** block: the highest block below the top whose
id differs from the top's (the floor under water, the dirt under grass). Minecraft keeps
heightmaps in its chunks for the same reason: a map reads 256 columns, not 98,304 blocks.

Bytes (column ``world_chunks.summary``, docs/schema.md)::

    byte 0      format (1)
    bytes 1-8   the row's version when the summary was made, int64 little-endian
    bytes 9-    LZ4 block (no size prefix) of 3,072 bytes: top ids uint32[256],
                top y int16[256], under ids uint32[256], under y int16[256]

y is the local index ``0 .. height-1``; -1 (and id 0) where there is no such block.

**Never stale.** The store computes a summary from the very array it encodes and the
backend seals it with the version it writes in the same statement. Every other writer of a
chunk (the ORM's ``WorldChunk.set_block_at``, a snapshot restore) gives the row a fresh
version too (docs/storage.md), so a summary whose sealed version is not the row's version
describes other contents: readers treat it as missing and decode the chunk instead
(:func:`open_summary`); ``voxeldb map --rebuild-summaries`` writes it again.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt

__all__ = [
    "SUMMARY_BODY_SIZE",
    "SUMMARY_FORMAT",
    "Summaries",
    "open_summary",
    "seal_summary",
    "summaries_from_bodies",
    "summarize",
]

SUMMARY_FORMAT = 1
SUMMARY_BODY_SIZE = 256 * (4 + 2 + 4 + 2)
_HEAD = struct.Struct("<Bq")
_COLUMNS = np.arange(256)
_Y1 = np.arange(1, 4097, dtype=np.int16)[:, None]
"""``y + 1`` for every local y a chunk can have (codec.MAX_HEIGHT is 4096)."""
_NONE_IDS = np.zeros(256, "<u4").tobytes()
_NONE_YS = np.full(256, -1, "<i2").tobytes()
_EMPTY = bytes(lz4.block.compress(_NONE_IDS + _NONE_YS + _NONE_IDS + _NONE_YS, store_size=False))
"""The summary of an all-air chunk."""


def _highest(flat: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per column of ``mask`` ``(n, k)``: the highest row where it holds, else -1.

    ``max`` over ``(y + 1) * mask`` is a reduction along the outer axis: numpy runs it over
    contiguous rows, several times faster than ``argmax`` along that axis.
    """
    n = mask.shape[0]
    if n == 0:
        return np.full(mask.shape[1], -1, np.int64)
    highest: npt.NDArray[np.int64] = (mask * _Y1[:n]).max(axis=0).astype(np.int64) - 1
    return highest


def summarize(blocks: npt.NDArray[Any]) -> bytes:
    """The summary body of a ``(height, 16, 16)`` chunk (unsealed: see :func:`seal_summary`).

    The top block is looked for in the highest non-empty section first (the rest only for
    the columns that are empty there); the under block is the one right below the top for
    most columns (grass on dirt), and only columns whose top block goes on downwards (water,
    a uniform fill) are searched further. Both searches go down in windows of
    :data:`_WINDOW` rows and stop once every column has its answer: the sea floor is found
    a few rows under the surface, not by scanning the whole column.
    """
    height = blocks.shape[0]
    flat = blocks.reshape(height, 256)
    # Which sections hold anything: 64-bit words make the scan a quarter as long.
    words = np.ascontiguousarray(flat).view(np.uint64).reshape(height // 16, -1)
    occupied = np.flatnonzero(words.max(axis=1))  # max: twice as fast as any() here
    if not len(occupied):
        return _EMPTY
    hi = (int(occupied[-1]) + 1) * 16
    top = np.full(256, -1, np.int64)
    _search_down(flat, top, hi, lambda lo, hi: flat[lo:hi] != 0)
    has_top = top >= 0
    top_id = flat[np.maximum(top, 0), _COLUMNS] * has_top
    below = flat[np.maximum(top - 1, 0), _COLUMNS]
    under = np.where((top > 0) & (below != top_id), top - 1, -1)
    deeper = (top > 0) & (below == top_id)
    if deeper.any():
        wanted = np.where(deeper, -1, -2)  # -2: not searched (answered already)
        depth = int(top[deeper].max())
        # A row counts if it differs from the column's top block and lies below it.
        _search_down(
            flat, wanted, depth, lambda lo, hi: (flat[lo:hi] != top_id) & (_Y1[lo:hi] <= top)
        )
        under = np.where(deeper, wanted, under)
    under_id = flat[np.maximum(under, 0), _COLUMNS] * (under >= 0)
    body = b"".join(
        (
            top_id.astype("<u4").tobytes(),
            top.astype("<i2").tobytes(),
            under_id.astype("<u4").tobytes(),
            under.astype("<i2").tobytes(),
        )
    )
    return bytes(lz4.block.compress(body, store_size=False))


_WINDOW = 32
"""Rows per step of a downward search (two sections)."""


def _search_down(
    flat: npt.NDArray[Any],
    found: npt.NDArray[np.int64],
    start: int,
    mask: Callable[[int, int], npt.NDArray[np.bool_]],
) -> None:
    """For the columns where ``found`` is -1: the highest row below ``start`` where ``mask``
    holds, written into ``found`` (left -1 where there is none). ``mask(lo, hi)`` gives the
    condition on rows ``[lo, hi)`` of all 256 columns: a contiguous scan of every column
    costs less than gathering the few wanted ones."""
    hi = start
    while hi > 0:
        lo = max(0, hi - _WINDOW)
        missing = found == -1
        if not missing.any():
            return
        window = _highest(flat, mask(lo, hi))
        hit = missing & (window >= 0)
        found[hit] = window[hit] + lo
        hi = lo


def seal_summary(body: bytes, version: int) -> bytes:
    """The stored form of ``body`` for a row written with ``version``."""
    return _HEAD.pack(SUMMARY_FORMAT, version) + body


def open_summary(stored: bytes | memoryview | None, version: int) -> bytes | None:
    """The body of a stored summary if it describes the row at ``version``, else None."""
    if stored is None or len(stored) < _HEAD.size:
        return None
    fmt, sealed = _HEAD.unpack_from(stored)
    if fmt != SUMMARY_FORMAT or sealed != version:
        return None
    return bytes(stored[_HEAD.size :])


class Summaries:
    """Decoded summaries of ``n`` chunks: arrays ``(n, 16, 16)`` indexed ``[chunk, z, x]``."""

    __slots__ = ("top_id", "top_y", "under_id", "under_y")

    def __init__(
        self,
        top_id: npt.NDArray[np.uint32],
        top_y: npt.NDArray[np.int16],
        under_id: npt.NDArray[np.uint32],
        under_y: npt.NDArray[np.int16],
    ) -> None:
        self.top_id = top_id
        self.top_y = top_y
        self.under_id = under_id
        self.under_y = under_y


def summaries_from_bodies(bodies: list[bytes]) -> Summaries:
    """Decode summary bodies (from :func:`summarize` or :func:`open_summary`) at once."""
    n = len(bodies)
    raw = b"".join(lz4.block.decompress(b, uncompressed_size=SUMMARY_BODY_SIZE) for b in bodies)
    if len(raw) != n * SUMMARY_BODY_SIZE:
        raise ValueError("a chunk summary has the wrong size")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(n, SUMMARY_BODY_SIZE)

    def part(start: int, dtype: str) -> npt.NDArray[np.generic]:
        width = 256 * np.dtype(dtype).itemsize
        return np.ascontiguousarray(table[:, start : start + width]).view(dtype).reshape(n, 16, 16)

    return Summaries(
        part(0, "<u4").astype(np.uint32),
        part(1024, "<i2").astype(np.int16),
        part(1536, "<u4").astype(np.uint32),
        part(2560, "<i2").astype(np.int16),
    )
