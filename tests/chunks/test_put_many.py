"""``put_many`` over many batches: encoding overlaps writing, and nothing changes for callers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from voxeldb import ChunkStore
from voxeldb.errors import ChunkFormatError


def _small_batches(store: ChunkStore) -> ChunkStore:
    return ChunkStore.open(
        store.engine, store.world_id, height=store.height, min_y=store.min_y, batch_size=3
    )


def test_a_generator_reusing_its_array_stores_each_item_as_yielded(store: ChunkStore) -> None:
    many = _small_batches(store)
    buffer = np.zeros((store.height, 16, 16), np.uint16)

    def items() -> Iterator[tuple[int, int, np.ndarray]]:
        for i in range(20):
            buffer[:] = 0
            buffer[: i + 1, 0, 0] = i + 1  # then changed again for the next item
            yield i, 0, buffer

    assert many.put_many(items()) == 20
    fresh = _small_batches(store)  # its own cache: what the rows hold
    got = fresh.region(0, 0, 19, 0)
    for i in range(20):
        column = got[(i, 0)][:, 0, 0]
        assert (column[: i + 1] == i + 1).all() and not column[i + 1 :].any(), i


def test_a_bad_item_after_several_batches_stores_nothing(store: ChunkStore) -> None:
    many = _small_batches(store)
    good = np.ones((store.height, 16, 16), np.uint16)

    def items() -> Iterator[object]:
        for i in range(10):
            yield i, 0, good
        yield 10, 0, np.ones((5, 5), np.uint16)

    head = store.head()
    with pytest.raises(ChunkFormatError, match="put_many item 10"):
        many.put_many(items())  # type: ignore[arg-type]
    assert many.region(0, 0, 10, 0) == {}
    assert store.head() == head


def test_later_items_win_across_batches(store: ChunkStore) -> None:
    many = _small_batches(store)
    arrays = [np.full((store.height, 16, 16), v, np.uint16) for v in (1, 2, 3)]
    items = [(0, 0, arrays[0]), (1, 0, arrays[0]), (2, 0, arrays[0]), (0, 0, arrays[1])]
    items += [(5, 5, arrays[0])] * 4 + [(1, 0, arrays[2])]
    assert many.put_many(items) == len(items)
    got = _small_batches(store).region(0, 0, 2, 0)
    assert {k: int(a[0, 0, 0]) for k, a in got.items()} == {(0, 0): 2, (1, 0): 3, (2, 0): 1}
    latest = {(c.cx, c.cz): c.kind for c in store.changes()}
    assert latest == {(0, 0): "put", (1, 0): "put", (2, 0): "put", (5, 5): "put"}
