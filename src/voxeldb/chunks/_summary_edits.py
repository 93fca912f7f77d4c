"""The summaries of edited chunks, worked out from their summaries before the edits.

A column's top and under blocks (``_summary``) depend on that column alone, so after a
``set_blocks`` only the columns it edited change. For most of those the edits and two blocks
say the answer:

- the new top is the highest edit that placed a block, if it lies above the old top;
  otherwise the old top, if that block is still there (rows above it were air, and no edit
  placed a block there);
- the under block is the one right below the new top, if that is another block (air
  included), as it is for grass on dirt or a torch on stone.

The other columns (the old top broken, water or a fill of one block below the top) are
searched whole, like a chunk without a summary. The result is the bytes ``summarize`` gives
for the edited chunk (the tests compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb._summary import pack_summaries, summaries_from_bodies, summarize_many

__all__ = ["summarize_edited"]

Array = npt.NDArray[Any]


def summarize_edited(
    chunks: Sequence[Array],
    before: Sequence[bytes | None],
    edits: Sequence[tuple[npt.NDArray[np.int64], Array]],
) -> list[bytes]:
    """Summary bodies of ``(height, 16, 16)`` chunks of one height, after edits.

    ``before[i]`` is chunk ``i``'s summary body before its edits, or None (it is then
    summarized whole); ``edits[i]`` its edits as flat positions ``y * 256 + z * 16 + x``
    and the ids written there, which ``chunks[i]`` already holds.
    """
    n = len(chunks)
    out: list[bytes | None] = [None] * n
    known = [i for i in range(n) if before[i] is not None]
    unknown = [i for i in range(n) if before[i] is None]
    for i, body in zip(unknown, summarize_many([chunks[i] for i in unknown]), strict=True):
        out[i] = body
    if known:
        bodies = _edited(
            [chunks[i] for i in known],
            [before[i] for i in known],  # type: ignore[misc]
            [edits[i] for i in known],
        )
        for i, body in zip(known, bodies, strict=True):
            out[i] = body
    return out  # type: ignore[return-value]


def _edited(
    chunks: list[Array],
    before: list[bytes],
    edits: list[tuple[npt.NDArray[np.int64], Array]],
) -> list[bytes]:
    m = len(chunks)
    height = chunks[0].shape[0]
    flats = [c.reshape(height, 256) for c in chunks]
    old = summaries_from_bodies(before)  # fresh arrays: updated in place below
    top_id = old.top_id.reshape(m, 256)
    top = old.top_y.reshape(m, 256).astype(np.int64)
    under_id = old.under_id.reshape(m, 256)
    under = old.under_y.reshape(m, 256).astype(np.int64)

    pos = np.concatenate([e[0] for e in edits]).astype(np.int64)
    ids = np.concatenate([e[1] for e in edits])
    key = np.repeat(np.arange(m, dtype=np.int64) * 256, [len(e[0]) for e in edits]) + (pos & 255)
    # The highest edit of each column that placed a block (-1: none).
    placed = ids != 0
    high = np.full(m * 256, -1, np.int64)
    np.maximum.at(high, key[placed], pos[placed] >> 8)
    mask = np.zeros(m * 256, dtype=bool)
    mask[key] = True
    touched = np.flatnonzero(mask)  # (chunk, column), in chunk order
    chunk, column = touched >> 8, touched & 255
    was = top.reshape(-1)[touched]
    new_top = np.maximum(high[touched], was)
    # The block at the new top and the one below it, one gather per chunk.
    at_top, below = _blocks_at(flats, chunk, column, new_top)
    air = new_top < 0  # no block before, none placed: still all air
    settled = air | (
        (at_top != 0) & ((new_top == 0) | (below != at_top))
    )  # the top is there; the block below is another (or there is none)
    new_under = np.where(new_top > 0, new_top - 1, -1)
    values = (
        np.where(air, 0, at_top),
        np.where(air, -1, new_top),
        np.where(new_top > 0, below, 0),
        np.where(air, -1, new_under),
    )
    targets: tuple[Array, ...] = (top_id, top, under_id, under)
    for target, value in zip(targets, values, strict=True):
        target.reshape(-1)[touched[settled]] = value[settled]
    searched = ~settled
    if searched.any():
        _search_columns(flats, chunk[searched], column[searched], top_id, top, under_id, under)
    return pack_summaries(top_id, top, under_id, under)


def _blocks_at(
    flats: list[Array], chunk: npt.NDArray[np.int64], column: npt.NDArray[np.int64], y: Array
) -> tuple[Array, Array]:
    """The blocks at ``y`` and ``y - 1`` (0 where y < 0, resp. y < 1) of each (chunk,
    column), given in chunk order."""
    bounds = np.searchsorted(chunk, np.arange(len(flats) + 1)).tolist()
    at = np.stack((np.maximum(y, 0), np.maximum(y - 1, 0))) * 256 + column
    found = np.zeros((2, len(y)), dtype=np.uint32)
    for i, flat in enumerate(flats):
        lo, hi = bounds[i], bounds[i + 1]
        if lo < hi:
            found[:, lo:hi] = flat.reshape(-1).take(at[:, lo:hi])
    found[0][y < 0] = 0
    found[1][y < 1] = 0
    return found[0], found[1]


def _search_columns(
    flats: list[Array],
    chunk: npt.NDArray[np.int64],
    column: npt.NDArray[np.int64],
    top_id: Array,
    top: Array,
    under_id: Array,
    under: Array,
) -> None:
    """Work out the given (chunk, column) pairs from their whole columns, in place."""
    height = flats[0].shape[0]
    bounds = np.searchsorted(chunk, np.arange(len(flats) + 1)).tolist()
    parts = [
        flat[:, column[bounds[i] : bounds[i + 1]]]
        for i, flat in enumerate(flats)
        if bounds[i] < bounds[i + 1]
    ]
    cols = np.concatenate(parts, axis=1)  # (height, k)
    k = cols.shape[1]
    every = np.arange(k)
    filled = cols != 0
    has_top = filled.any(axis=0)
    t = np.where(has_top, height - 1 - filled[::-1].argmax(axis=0), -1)
    t_id = cols[np.maximum(t, 0), every] * has_top
    # The under block: the highest row below the top whose block is another.
    other = (cols != t_id) & (np.arange(height)[:, None] < t)
    has_under = other.any(axis=0)
    u = np.where(has_under, height - 1 - other[::-1].argmax(axis=0), -1)
    u_id = cols[np.maximum(u, 0), every] * has_under
    flat_index = chunk * 256 + column
    top_id.reshape(-1)[flat_index] = t_id
    top.reshape(-1)[flat_index] = t
    under_id.reshape(-1)[flat_index] = u_id
    under.reshape(-1)[flat_index] = u
