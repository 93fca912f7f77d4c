"""Chunk summaries (the map's top and under blocks): written with every store write, on both
backends, equal to what decoding the chunk gives; stale ones detected and rebuilt."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

import voxeldb
from voxeldb import Database
from voxeldb._summary import (
    Summaries,
    open_summary,
    summaries_from_bodies,
    summarize,
    summarize_many,
)
from voxeldb.chunks import world_chunks_table
from voxeldb.meta import WorldChunk
from voxeldb.terrain import generate_chunk

HEIGHT, MIN_Y = 64, -16


def reference(blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    """Top and under (id, y) of each column, by a plain loop."""
    flat = blocks.reshape(blocks.shape[0], 256)
    top_id, top_y = np.zeros(256, np.int64), np.full(256, -1)
    under_id, under_y = np.zeros(256, np.int64), np.full(256, -1)
    for c in range(256):
        solid = np.flatnonzero(flat[:, c])
        if len(solid):
            top_y[c], top_id[c] = solid[-1], flat[solid[-1], c]
            other = np.flatnonzero(flat[: solid[-1], c] != top_id[c])
            if len(other):
                under_y[c], under_id[c] = other[-1], flat[other[-1], c]
    return top_id, top_y, under_id, under_y


def assert_describes(summaries: Summaries, i: int, blocks: np.ndarray | None) -> None:
    assert blocks is not None
    top_id, top_y, under_id, under_y = reference(blocks)
    assert (summaries.top_id[i].reshape(-1) == top_id).all()
    assert (summaries.top_y[i].reshape(-1) == top_y).all()
    assert (summaries.under_id[i].reshape(-1) == under_id).all()
    assert (summaries.under_y[i].reshape(-1) == under_y).all()


def odd_chunks() -> Iterator[np.ndarray]:
    rng = np.random.default_rng(7)
    yield generate_chunk(0, 0, height=HEIGHT, min_y=MIN_Y)
    yield generate_chunk(3, -2, height=384, min_y=-64)  # sea, beaches: under differs
    yield np.zeros((HEIGHT, 16, 16), np.uint16)  # all air
    for k in range(6):
        a = rng.integers(0, 4, size=(HEIGHT, 16, 16)).astype(np.uint16)
        a[rng.random(a.shape) < 0.85] = 0
        a[:, : 2 * k] = 0
        yield a
    uniform = np.zeros((32, 16, 16), np.uint32)
    uniform[:20] = 70_000  # ids past uint16; no under block anywhere
    uniform[:5, 0, 0] = 9
    yield uniform
    single = np.zeros((48, 16, 16), np.uint16)
    single[47, 15, 15] = 3  # one block at the very top
    yield single
    # Columns of random heights under seas of random depth: the downward searches must
    # carry on over several windows for some columns and stop early for others.
    for k in range(4):
        height = 256
        ground = rng.integers(0, height, size=(16, 16))
        sea = np.minimum(height, ground + rng.integers(0, 200, size=(16, 16)) * (k % 2))
        y = np.arange(height)[:, None, None]
        col = np.where(y < ground, 1, np.where(y < sea, 8, 0)).astype(np.uint16)
        col[0, rng.random((16, 16)) < 0.3] = 5  # bedrock under some
        col[:, rng.random((16, 16)) < 0.2] = 0  # empty columns
        yield col


@pytest.mark.parametrize("index", range(15))
def test_summarize_matches_a_plain_loop(index: int) -> None:
    blocks = list(odd_chunks())[index]
    assert_describes(summaries_from_bodies([summarize(blocks)]), 0, blocks)


def test_summarize_many_matches_one_at_a_time() -> None:
    by_height: dict[int, list[np.ndarray]] = {}
    for blocks in odd_chunks():
        by_height.setdefault(blocks.shape[0], []).append(blocks)
    mixed = by_height[HEIGHT] + [by_height[HEIGHT][0].astype(np.uint32) * 5]  # both dtypes
    for chunks in [*by_height.values(), mixed, mixed[::-1]]:
        assert summarize_many(chunks) == [summarize(c) for c in chunks]
    assert summarize_many([]) == []


def test_sealed_summary_needs_the_rows_version() -> None:
    from voxeldb._summary import seal_summary

    body = summarize(np.ones((16, 16, 16), np.uint16))
    sealed = seal_summary(body, 2**62 + 5)
    assert open_summary(sealed, 2**62 + 5) == body
    assert open_summary(sealed, 2**62 + 6) is None
    assert open_summary(None, 1) is None
    assert open_summary(b"\x01", 1) is None


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = voxeldb.connect(database_url, cache="memory")
    database.create_schema()
    yield database
    database.close()


def stored_summaries(db: Database, world: object) -> dict[tuple[int, int], bytes | None]:
    c = world_chunks_table.c
    query = select(c.chunk_x, c.chunk_z, c.version, c.summary).where(c.world_id == world)
    with db.engine.connect() as conn:
        return {(x, z): open_summary(s, v) for x, z, v, s in conn.execute(query)}


def test_every_write_path_stores_the_summary(db: Database) -> None:
    world = db.create_world("summarized", {"height": HEIGHT, "min_y": MIN_Y})
    store = db.chunks(world)
    arrays = {(i, -i): a for i, a in enumerate(c for c in odd_chunks() if c.shape[0] == HEIGHT)}
    first = next(iter(arrays))
    store.put(*first, arrays[first])  # put
    store.put_many((x, z, a) for (x, z), a in arrays.items())  # put_many (insert and replace)
    store.put_many([(x + 100, z, a) for (x, z), a in arrays.items()])  # new keys only (COPY)
    store.set_blocks([(0, 30, 0, "gold"), (5, 40, 7, "gold"), (16 * 50, 3, 0, "glass")])
    with pytest.raises(ValueError):  # a write that fails leaves the summaries as they were
        store.put_many([(70, 70, arrays[first]), (71, 71, np.zeros((3, 3)))])
    summaries = stored_summaries(db, world)
    assert None not in summaries.values()
    assert len(summaries) == 2 * len(arrays) + 1
    keys = list(summaries)
    decoded = summaries_from_bodies([summaries[k] for k in keys])  # type: ignore[misc]
    for i, key in enumerate(keys):
        assert_describes(decoded, i, store.get(*key))
    # The store's own reader answers the same, with nothing left to decode.
    read = store.summaries(-200, -200, 200, 200)
    assert read.decoded == 0 and sorted(read.keys) == sorted(keys)
    for i, key in enumerate(read.keys):
        assert_describes(read.summaries, i, store.get(*key))


def test_a_write_that_does_not_summarize_is_detected_and_rebuilt(db: Database) -> None:
    world = db.create_world("orm-edited", {"height": HEIGHT, "min_y": MIN_Y})
    store = db.chunks(world)
    store.put_many((x, 0, generate_chunk(x, 0, height=HEIGHT, min_y=MIN_Y)) for x in range(3))
    with db.session() as s:  # the ORM writes data and a new version, not the summary
        row = s.get(WorldChunk, (world, 1, 0))
        assert row is not None
        row.set_block_at(4, MIN_Y + HEIGHT - 1, 4, "beacon")
    assert stored_summaries(db, world)[(1, 0)] is None  # stale: sealed with the old version
    read = store.summaries(0, 0, 2, 0)
    assert read.decoded == 1 and read.rebuilt == 0
    i = read.keys.index((1, 0))
    assert read.summaries.top_y[i, 4, 4] == HEIGHT - 1
    assert_describes(read.summaries, i, store.get(1, 0))
    rebuilt = store.summaries(0, 0, 2, 0, rebuild=True)
    assert rebuilt.decoded == 1 and rebuilt.rebuilt == 1
    assert None not in stored_summaries(db, world).values()
    assert store.summaries(0, 0, 2, 0).decoded == 0
    # Rows from before the summary column: NULL, decoded all the same.
    with db.engine.begin() as conn:
        conn.execute(
            world_chunks_table.update()
            .where(world_chunks_table.c.world_id == world)
            .values(summary=None)
        )
    again = store.summaries(0, 0, 2, 0)
    assert again.decoded == 3
    for i, key in enumerate(again.keys):
        assert_describes(again.summaries, i, store.get(*key))
