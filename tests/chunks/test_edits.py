"""``set_blocks`` planning and its use of the in-process cache (every backend)."""

from __future__ import annotations

import numpy as np
import pytest

from voxeldb import ChunkStore
from voxeldb.chunks._edits import plan_edits
from voxeldb.errors import CoordinateError, ValidationError


def test_a_cached_array_is_copied_not_edited_in_place(store: ChunkStore) -> None:
    store.set_blocks([(1, 2, 3, "stone")])
    before = store.get(0, 0)
    assert before is not None
    kept = before.copy()
    store.set_blocks([(1, 2, 3, "glass"), (4, 5, 6, "dirt")])
    after = store.get(0, 0)
    assert after is not None and after is not before
    np.testing.assert_array_equal(before, kept)  # what a reader holds never changes
    assert not before.flags.writeable and not after.flags.writeable
    assert store.get_block(1, 2, 3) == {"type": "glass"}
    assert store.get_block(4, 5, 6) == {"type": "dirt"}


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def test_a_cached_array_nobody_holds_is_edited_in_place(store: ChunkStore) -> None:
    """The cache's own array, held by nobody else, is edited without a copy; the reader's
    view taken before stays as it was (it held the array, so that edit copied)."""
    store.set_blocks([(1, 2, 3, "stone")])  # the cache keeps the written array itself
    first = store.get(0, 0)
    assert first is not None
    kept = first.copy()
    store.set_blocks([(1, 2, 3, "glass")])  # `first` is held: a copy is edited
    np.testing.assert_array_equal(first, kept)
    del first
    held = store.get(0, 0)
    assert held is not None
    where = _address(held)
    del held
    store.set_blocks([(4, 5, 6, "dirt")])  # nobody holds it: edited where it is
    after = store.get(0, 0)
    assert after is not None and _address(after) == where
    assert not after.flags.writeable
    assert store.get_block(1, 2, 3) == {"type": "glass"}
    assert store.get_block(4, 5, 6) == {"type": "dirt"}


def test_a_failed_edit_leaves_no_edited_array_in_the_cache(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The array taken out of the cache and edited, when the write then fails, is never
    served: the next read is the stored chunk."""
    store.set_blocks([(1, 2, 3, "stone")])
    backend = store._backend

    def fail(*_: object) -> None:
        raise ValidationError("the write fails after the edit", field="test")

    monkeypatch.setattr(backend, "update", fail)
    with pytest.raises(ValidationError, match="fails after the edit"):
        store.set_blocks([(1, 2, 3, "glass")])
    monkeypatch.undo()
    assert store.get_block(1, 2, 3) == {"type": "stone"}
    chunk = store.get(0, 0)
    assert chunk is not None
    fresh = ChunkStore.open(store.engine, store.world_id, height=store.height, min_y=store.min_y)
    stored = fresh.get(0, 0)
    assert stored is not None
    np.testing.assert_array_equal(chunk, stored)


def test_rows_the_cache_drops_while_they_are_locked_are_read(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock leaves out the data of rows the cache said it held; a cache that no longer
    has them when asked for the arrays (evicted meanwhile) gets them read from the locked
    rows, not edited from nothing."""
    store.set_blocks([(1, 2, 3, "stone"), (20, 2, 3, "dirt")])  # chunks (0, 0) and (1, 0)
    cache = store._edit_cache
    asked: list[object] = []

    class Forgetful:
        def versions(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
            held = cache.versions(keys)
            asked.append(held)
            return held

        def writable(self, pairs: list[object]) -> dict[tuple[int, int], np.ndarray]:
            return {}  # evicted since

    monkeypatch.setattr(store, "_edit_cache", Forgetful())
    store.set_blocks([(4, 5, 6, "glass"), (21, 5, 6, "glass")])
    assert asked and len(asked[0]) == 2  # both were said to be held
    monkeypatch.undo()
    for s in (
        store,
        ChunkStore.open(store.engine, store.world_id, height=store.height, min_y=store.min_y),
    ):
        assert s.get_block(1, 2, 3) == {"type": "stone"}
        assert s.get_block(20, 2, 3) == {"type": "dirt"}
        assert s.get_block(4, 5, 6) == {"type": "glass"}
        assert s.get_block(21, 5, 6) == {"type": "glass"}


def test_a_cache_entry_of_another_version_is_not_used(store: ChunkStore) -> None:
    store.set_blocks([(1, 2, 3, "stone")])
    assert store.get(0, 0) is not None  # cached at this version
    other = ChunkStore.open(  # another server, with its own cache
        store.engine, store.world_id, height=store.height, min_y=store.min_y
    )
    other.set_blocks([(7, 7, 7, "glass")])
    store.set_blocks([(8, 8, 8, "dirt")])  # must start from the row, not the stale entry
    for s in (store, other):
        assert s.get_block(7, 7, 7) == {"type": "glass"}
        assert s.get_block(8, 8, 8) == {"type": "dirt"}
        assert s.get_block(1, 2, 3) == {"type": "stone"}


@pytest.mark.parametrize("as_list", [True, False])
def test_list_and_iterator_plans_agree(as_list: bool) -> None:
    rng = np.random.default_rng(1)
    names = ["stone", "glass", {"type": "torch", "facing": "north"}]
    edits = [
        (int(x), int(y), int(z), names[int(i)])
        for x, y, z, i in zip(
            rng.integers(-40, 40, 500),
            rng.integers(0, 64, 500),
            rng.integers(-40, 40, 500),
            rng.integers(0, 3, 500),
            strict=True,
        )
    ]
    plan = plan_edits(edits if as_list else iter(edits), 64, 0)
    reference = plan_edits(iter(edits), 64, 0)
    assert plan is not None and reference is not None
    assert plan.keys == reference.keys and plan.count == 500
    np.testing.assert_array_equal(plan.flat, reference.flat)
    got = [plan.states[s] for s in plan.slots]
    assert got == [reference.states[s] for s in reference.slots]


@pytest.mark.parametrize(
    ("edits", "error", "message"),
    [
        ([(0, 0, 0, "stone"), (1, 2, 3)], ValidationError, "edit 1"),
        ([(0, 0, 0, "stone"), 5], ValidationError, "edit 1"),
        ([(0, 0, 0, "stone"), (True, 0, 0, "stone")], CoordinateError, "edit 1"),
        ([(0, 0, 0, "stone"), (2**64, 0, 0, "stone")], CoordinateError, "edit 1"),
        ([(0, 0, 0, "stone"), (0.5, 0, 0, "stone")], CoordinateError, "edit 1"),
        ([(0, 99, 0, "stone")], CoordinateError, "edit 0: y = 99"),
    ],
)
def test_a_bad_edit_in_a_list_is_named(edits: list, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plan_edits(edits, 64, 0)
