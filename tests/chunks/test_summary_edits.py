"""``summarize_edited`` (the summaries of a ``set_blocks`` write, from the summaries before it)
gives the very bytes ``summarize`` gives for the edited chunks: random edits, placed and
broken top blocks, seas and fills of one block, uint32 ids, chunks without a summary."""

from __future__ import annotations

import numpy as np
import pytest

from voxeldb._summary import summarize, summarize_many
from voxeldb.chunks._summary_edits import summarize_edited
from voxeldb.terrain import generate_chunk

Edits = tuple[np.ndarray, np.ndarray]


def _edit(blocks: np.ndarray, pos: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, Edits]:
    pos, first = np.unique(pos, return_index=True)
    ids = ids[first].astype(blocks.dtype)
    after = blocks.copy()
    after.reshape(-1)[pos] = ids
    after.flags.writeable = False
    return after, (pos.astype(np.int64), ids)


@pytest.mark.parametrize("seed", range(40))
def test_random_edits_give_the_summaries_of_the_edited_chunks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dtype = np.uint32 if seed % 2 else np.uint16
    air_share = (0.0, 0.3, 0.9)[seed % 3]
    chunks, before, edits = [], [], []
    for _ in range(int(rng.integers(1, 10))):
        blocks = generate_chunk(int(rng.integers(-99, 99)), int(rng.integers(-99, 99)))
        blocks = blocks.astype(dtype)
        if seed % 4 == 0:
            blocks[60:70, :8] = 9  # a pool of one block: the under search goes down
        if rng.random() < 0.15:
            blocks[:] = 0
        count = int(rng.integers(1, 400))
        ids = rng.integers(1, 6, count)
        ids[rng.random(count) < air_share] = 0
        if dtype == np.uint32:
            ids[rng.random(count) < 0.1] = 70_000
        after, change = _edit(blocks, rng.integers(0, blocks.size, count), ids)
        chunks.append(after)
        before.append(summarize(blocks) if rng.random() < 0.85 else None)
        edits.append(change)
    assert summarize_edited(chunks, before, edits) == summarize_many(chunks)


@pytest.mark.parametrize("seed", range(30))
def test_edits_at_the_surface(seed: int) -> None:
    """Top blocks broken, replaced, or built on by one or two: the cases the edits alone
    do not settle."""
    rng = np.random.default_rng(100 + seed)
    blocks = generate_chunk(seed, -seed)
    columns = blocks.reshape(blocks.shape[0], 256)
    tops = blocks.shape[0] - 1 - (columns != 0)[::-1].argmax(axis=0)
    picked = rng.choice(256, 60, replace=False)
    ys = np.clip(tops[picked] + rng.integers(-3, 3, 60), 0, blocks.shape[0] - 1)
    ids = rng.integers(0, 3, 60)
    after, change = _edit(blocks, ys * 256 + picked, ids)
    assert summarize_edited([after], [summarize(blocks)], [change]) == [summarize(after)]


def test_edits_at_the_bottom_and_the_top_row() -> None:
    blocks = np.zeros((32, 16, 16), np.uint16)
    blocks[0] = 4  # a floor at y = 0: its under block is none
    pos = np.array([0 * 256 + 1, 31 * 256 + 2, 0 * 256 + 3, 31 * 256 + 4])
    ids = np.array([5, 6, 0, 4])  # replace and break floor blocks, place at the very top
    after, change = _edit(blocks, pos, ids)
    assert summarize_edited([after], [summarize(blocks)], [change]) == [summarize(after)]
    air = np.zeros((32, 16, 16), np.uint16)
    still_air, nothing = _edit(air, np.array([5, 300]), np.array([0, 0]))
    assert summarize_edited([still_air], [summarize(air)], [nothing]) == [summarize(air)]
