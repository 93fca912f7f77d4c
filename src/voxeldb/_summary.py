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
from collections.abc import Callable, Sequence
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt

__all__ = [
    "SUMMARY_BODY_SIZE",
    "SUMMARY_FORMAT",
    "Summaries",
    "open_summary",
    "pack_summaries",
    "seal_summary",
    "summaries_from_bodies",
    "summarize",
    "summarize_many",
]

SUMMARY_FORMAT = 1
SUMMARY_BODY_SIZE = 256 * (4 + 2 + 4 + 2)
_HEAD = struct.Struct("<Bq")
_COLUMNS = np.arange(256)
_Y1 = np.arange(1, 4097, dtype=np.int16)[:, None]
"""``y + 1`` for every local y a chunk can have (codec.MAX_HEIGHT is 4096)."""
_STEP = 32
"""Rows per step of :func:`summarize`'s downward searches (two sections)."""
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
    :data:`_STEP` rows and stop once every column has its answer: the sea floor is found
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
        lo = max(0, hi - _STEP)
        missing = found == -1
        if not missing.any():
            return
        window = _highest(flat, mask(lo, hi))
        hit = missing & (window >= 0)
        found[hit] = window[hit] + lo
        hi = lo


_ROWS = np.arange(4096, dtype=np.int32)[None, :, None]
_ROWS1_U8 = np.arange(1, 256, dtype=np.uint8)[None, :, None]
_ROWS1_U16 = np.arange(1, 4097, dtype=np.uint16)[None, :, None]
_SECTION1 = np.arange(1, 257, dtype=np.uint16)[None, :, None]
_ROW1 = np.arange(1, 17, dtype=np.uint8)
"""``row + 1`` in a window, in the smallest type that holds it: the search's product and
max stay small."""


def summarize_many(chunks: Sequence[npt.NDArray[Any]]) -> list[bytes]:
    """:func:`summarize` of ``(height, 16, 16)`` chunks of one height, at once (for a
    write's own arrays: ``set_blocks``, rollback).

    Each numpy call on a chunk's 256 columns costs more in overhead than in work, so the
    chunks go through every step together. The top block: each section's per-column maximum
    (one pass over the chunk) names the highest occupied section of every column, and only
    those 16 rows are searched, so a block placed high above the ground costs nothing more.
    The under block, where the one right below the top is the same block (water, a uniform
    fill), is searched from there down in windows (:data:`_STEP` rows, doubling), stacked
    over the chunks still searching, stopping once every column has its answer: a sea floor
    is found a few rows under the surface.
    """
    n = len(chunks)
    if n == 0:
        return []
    height = chunks[0].shape[0]
    sections = height // 16
    flats = [c.reshape(height, 256) for c in chunks]
    cubes = [c.reshape(sections, 16, 256) for c in chunks]
    occupied = np.stack([cube.max(axis=1) for cube in cubes]) != 0  # (n, sections, 256)
    section = (occupied * _SECTION1[:, :sections]).max(axis=1).astype(np.int64) - 1
    has_top = section >= 0
    section = np.maximum(section, 0)
    rows = np.stack([cube[section[i], :, _COLUMNS] for i, cube in enumerate(cubes)])
    row = ((rows != 0) * _ROW1).max(axis=2).astype(np.int64) - 1  # (n, 256)
    top = np.where(has_top, section * 16 + row, -1)
    top_id = np.take_along_axis(rows, np.maximum(row, 0)[..., None], axis=2)[..., 0]
    top_id = top_id.astype(np.uint32) * has_top
    # The block right below the top: the under block unless it is the top's block again.
    below_id = np.zeros((n, 256), np.uint32)
    below = np.maximum(top - 1, 0)
    for i, flat in enumerate(flats):
        below_id[i] = flat[below[i], _COLUMNS]
    under = np.where(top > 0, top - 1, -1)
    under_id = below_id.copy()
    deeper = (top > 0) & (below_id == top_id)
    if deeper.any():
        under[deeper] = -1
        under_id[deeper] = 0
        searched = np.where(deeper, -1, -2)  # -2: answered already, not searched
        # A row counts if it differs from the column's top block and lies below it.
        _search_down_many(
            flats,
            np.where(deeper.any(axis=1), top.max(axis=1, where=deeper, initial=0), 0),
            searched,
            under_id,
            lambda window, rows, at: (window != top_id[at, None, :]) & (rows < top[at, None, :]),
        )
        under = np.where(deeper, searched, under)
    under_id *= under >= 0
    top_id *= top >= 0
    return pack_summaries(top_id, top, under_id, under)


def pack_summaries(
    top_id: npt.NDArray[Any],
    top: npt.NDArray[Any],
    under_id: npt.NDArray[Any],
    under: npt.NDArray[Any],
) -> list[bytes]:
    """The bodies of ``n`` summaries given as ``(n, 256)`` arrays (ids 0 and y -1 where
    there is no such block)."""
    table = np.concatenate(
        (
            top_id.astype("<u4").view(np.uint8),
            top.astype("<i2").view(np.uint8),
            under_id.astype("<u4").view(np.uint8),
            under.astype("<i2").view(np.uint8),
        ),
        axis=1,
    )
    empty: npt.NDArray[np.bool_] = np.all(top < 0, axis=1)
    return [
        _EMPTY if empty[i] else bytes(lz4.block.compress(table[i], store_size=False))
        for i in range(len(table))
    ]


def _search_down_many(
    flats: list[npt.NDArray[Any]],
    starts: npt.NDArray[np.int64],
    found: npt.NDArray[np.int64],
    found_id: npt.NDArray[np.uint32],
    condition: Callable[
        [npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[np.intp]], npt.NDArray[np.bool_]
    ],
) -> None:
    """For each chunk ``i`` and column where ``found`` is -1: the highest row below
    ``starts[i]`` where ``condition`` holds, and its block, written into ``found`` and
    ``found_id`` (left -1 where there is none).

    ``condition(window, rows, at)`` gets the stacked windows ``(k, size, 256)`` of the
    chunks ``at``, and each window row's y as ``(k, size, 1)``. A window may reach
    above the rows still to search (near a chunk's bottom it is kept full-sized); those
    rows were searched before without a hit for the columns still wanted, or lie above
    ``starts``, so they cannot answer.
    """
    height = flats[0].shape[0]
    size = min(_STEP, height)
    hi = starts.copy()
    # Doubling windows: most columns end in the first, a column of stone down to the
    # bottom costs a few steps, not one per section.
    while True:
        at = np.flatnonzero((hi > 0) & (found == -1).any(axis=1))
        if not len(at):
            return
        lo = np.clip(hi[at] - size, 0, height - size)
        window = np.stack([flats[i][j : j + size] for i, j in zip(at, lo.tolist(), strict=True)])
        rows = lo[:, None, None] + _ROWS[:, :size]
        holds = condition(window, rows, at)
        # The highest row that holds: a max over (row + 1) * holds, -1 when none.
        row1 = _ROWS1_U8 if size < 256 else _ROWS1_U16
        highest = (holds * row1[:, :size]).max(axis=1).astype(np.int64) - 1
        was, was_id = found[at], found_id[at]
        hit = (was == -1) & (highest >= 0)
        ids = np.take_along_axis(window, np.maximum(highest, 0)[:, None, :], axis=1)[:, 0, :]
        found[at] = np.where(hit, highest + lo[:, None], was)
        found_id[at] = np.where(hit, ids, was_id)
        hi[at] = lo
        size = min(2 * size, height)


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
