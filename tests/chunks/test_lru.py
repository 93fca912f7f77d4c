"""ChunkLRU: version-tagged, byte-bounded, read-only, thread-safe."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from voxeldb.chunks import ChunkLRU
from voxeldb.errors import ChunkFormatError, ConfigurationError


def chunk(fill: int, height: int = 16, dtype: Any = np.uint16) -> np.ndarray[Any, Any]:
    return np.full((height, 16, 16), fill, dtype=dtype)


CHUNK_BYTES = chunk(0).nbytes  # 8 KiB


def test_hit_only_for_the_exact_version() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put(("w", 0, 0), 3, chunk(7))
    hit = lru.get(("w", 0, 0), 3)
    assert hit is not None and np.array_equal(hit, chunk(7))
    assert lru.get(("w", 0, 0), 2) is None
    assert lru.get(("w", 1, 0), 3) is None
    stats = lru.stats()
    assert stats["hits"] == 1
    assert stats["misses"] == 2


@pytest.mark.parametrize("asked", [2, 4])
def test_an_entry_of_another_version_is_a_miss_and_is_freed(asked: int) -> None:
    # Versions are random, not ordered: any other version means the entry is not the row's.
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("k", 3, chunk(1))
    assert lru.get("k", asked) is None
    assert lru.stats()["entries"] == 0
    assert lru.stats()["bytes"] == 0


def test_last_put_wins_even_with_a_lower_version() -> None:
    # A chunk deleted and created again restarts at a lower version in the database.
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("k", 7, chunk(7))
    lru.put("k", 1, chunk(1))
    hit = lru.get("k", 1)
    assert hit is not None and hit[0, 0, 0] == 1
    assert lru.stats()["bytes"] == CHUNK_BYTES
    assert lru.get("k", 7) is None


def test_cached_arrays_are_read_only_and_returned_without_a_copy() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("k", 1, chunk(5))
    first = lru.get("k", 1)
    second = lru.get("k", 1)
    assert first is not None and second is not None
    assert first is second
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0, 0] = 9
    editable = first.copy()
    editable[0, 0, 0] = 9
    assert lru.get("k", 1)[0, 0, 0] == 5  # type: ignore[index]


def test_put_copies_so_the_caller_keeps_a_writable_array_the_cache_cannot_see() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    mine = chunk(5)
    lru.put("k", 1, mine)
    assert mine.flags.writeable
    mine[:] = 6
    cached = lru.get("k", 1)
    assert cached is not None
    assert not np.shares_memory(cached, mine)
    assert int(cached.max()) == 5


def test_take_ownership_caches_the_array_itself_and_freezes_it() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    mine = chunk(5)
    lru.put("k", 1, mine, take_ownership=True)
    assert lru.get("k", 1) is mine
    assert not mine.flags.writeable


def test_put_accepts_non_contiguous_and_read_only_arrays() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    base = np.arange(16 * 16 * 32, dtype=np.uint32).reshape(32, 16, 16)
    view = base[::2]
    frozen = base.copy()
    frozen.flags.writeable = False
    lru.put_many([("a", 1, view), ("b", 1, frozen)])
    got = lru.get_many([("a", 1), ("b", 1), ("c", 1)])
    assert set(got) == {"a", "b"}
    assert np.array_equal(got["a"], view)
    assert got["b"].dtype == np.uint32


def test_evicts_least_recently_used_within_the_byte_bound() -> None:
    lru = ChunkLRU(3 * CHUNK_BYTES)
    for i in range(3):
        lru.put(i, 1, chunk(i))
    assert lru.get(0, 1) is not None  # 0 is now the most recent; 1 is the oldest
    lru.put(3, 1, chunk(3))
    assert lru.get(1, 1) is None
    assert set(lru.get_many([(0, 1), (2, 1), (3, 1)])) == {0, 2, 3}
    stats = lru.stats()
    assert stats["evictions"] == 1
    assert stats["entries"] == 3
    assert stats["bytes"] == 3 * CHUNK_BYTES
    assert stats["max_bytes"] == 3 * CHUNK_BYTES


def test_bytes_count_each_arrays_nbytes() -> None:
    lru = ChunkLRU(100 * CHUNK_BYTES)
    lru.put("small", 1, chunk(1, height=16, dtype=np.uint16))
    lru.put("big", 1, chunk(1, height=64, dtype=np.uint32))
    assert lru.stats()["bytes"] == CHUNK_BYTES + 8 * CHUNK_BYTES
    lru.put("big", 2, chunk(1, height=16, dtype=np.uint16))
    assert lru.stats()["bytes"] == 2 * CHUNK_BYTES


def test_an_array_bigger_than_the_cache_is_not_cached_and_drops_the_old_entry() -> None:
    lru = ChunkLRU(2 * CHUNK_BYTES)
    lru.put("k", 1, chunk(1))
    lru.put("other", 1, chunk(2))
    lru.put("k", 2, chunk(3, height=48))
    assert lru.get("k", 2) is None
    assert lru.get("k", 1) is None
    assert lru.get("other", 1) is not None  # nothing else was evicted for it
    assert lru.stats()["evictions"] == 0


def test_zero_max_bytes_disables_the_cache() -> None:
    lru = ChunkLRU(0)
    lru.put("k", 1, chunk(1))
    assert lru.get("k", 1) is None
    assert lru.stats()["entries"] == 0
    assert lru.stats()["misses"] == 1


def test_discard_and_clear() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put_many([(i, 1, chunk(i)) for i in range(4)])
    lru.discard(0)
    lru.discard("never cached")
    assert lru.get(0, 1) is None
    assert lru.stats()["bytes"] == 3 * CHUNK_BYTES
    lru.clear()
    assert lru.stats()["entries"] == 0
    assert lru.stats()["bytes"] == 0
    assert len(lru) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_max_bytes_is_rejected(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        ChunkLRU(bad)


def test_put_rejects_something_that_is_not_an_array() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    with pytest.raises(ChunkFormatError, match="numpy array"):
        lru.put("k", 1, [1, 2, 3])  # type: ignore[arg-type]


def test_concurrent_use_keeps_the_accounting_exact() -> None:
    lru = ChunkLRU(20 * CHUNK_BYTES)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(2000):
                key = int(rng.integers(0, 50))
                version = int(rng.integers(1, 4))
                if rng.random() < 0.5:
                    lru.put(key, version, chunk(key))
                else:
                    hit = lru.get(key, version)
                    assert hit is None or int(hit[0, 0, 0]) == key
                if rng.random() < 0.01:
                    lru.discard(key)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = lru.stats()
    assert stats["bytes"] == stats["entries"] * CHUNK_BYTES
    assert stats["bytes"] <= 20 * CHUNK_BYTES
    assert stats["hits"] + stats["misses"] > 0


# --- encoded bytes beside the arrays ------------------------------------------------------


def test_entries_keep_encoded_bytes_beside_the_array_and_count_them() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.keep_many([("k", 1, None, b"encoded")])
    assert lru.get("k", 1) is None  # no array yet: a miss for get, not a stale entry
    assert lru.peek_many(["k", "other"], encoded=True) == {"k": (1, None, b"encoded")}
    array = chunk(3)
    lru.keep_many([("k", 1, array, None)], owned=True)  # same version: gains the array
    assert lru.peek_many(["k"]) == {"k": (1, array, b"encoded")}
    assert lru.stats()["bytes"] == CHUNK_BYTES + len(b"encoded")
    lru.keep_many([("k", 2, None, b"newer")])  # another version replaces both
    assert lru.peek_many(["k"]) == {"k": (2, None, b"newer")}
    assert lru.stats()["bytes"] == len(b"newer")
    assert lru.peek_many(["j"], encoded=True) == {}
    lru.put("j", 1, chunk(1))
    assert lru.peek_many(["j"], encoded=True) == {}  # an array alone serves no encoded read


def test_confirm_counts_hits_and_refreshes_recency() -> None:
    lru = ChunkLRU(2 * CHUNK_BYTES)
    lru.put_many([(0, 1, chunk(0)), (1, 1, chunk(1))])
    lru.confirm([0], misses=3)  # 0 is now the most recently used
    lru.put(2, 1, chunk(2))
    assert set(lru.peek_many([0, 1, 2])) == {0, 2}
    assert lru.stats()["hits"] == 1 and lru.stats()["misses"] == 3


# --- recycled memory ----------------------------------------------------------------------


def _address(array: np.ndarray[Any, Any]) -> int:
    return int(array.__array_interface__["data"][0])


def test_memory_of_an_array_nobody_holds_is_reused_for_the_next_decode() -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("a", 1, chunk(1))
    address = _address(lru.peek_many(["a"])["a"][1])  # type: ignore[arg-type]
    lru.discard("a")
    assert lru.stats()["pooled"] == CHUNK_BYTES
    reused = lru.take((16, 16, 16), np.dtype(np.uint16))
    assert _address(reused) == address and reused.flags.writeable
    assert lru.stats()["pooled"] == 0 and lru.stats()["reused"] == 1
    other = lru.take((16, 16, 16), np.dtype(np.uint32))  # nothing of that kind: new memory
    assert _address(other) != address


@pytest.mark.parametrize("keep", ["array", "view", "memoryview"])
def test_memory_still_held_anywhere_is_never_reused(keep: str) -> None:
    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("a", 1, chunk(7))
    array = lru.get("a", 1)
    assert array is not None
    held: Any = {"array": array, "view": array[3:5, ::2], "memoryview": memoryview(array)}[keep]
    del array
    lru.discard("a")
    lru.clear()
    assert lru.stats()["pooled"] == 0
    for _ in range(3):
        lru.take((16, 16, 16), np.dtype(np.uint16))[...] = 0
    assert int(np.asarray(held).max()) == 7


def test_an_entry_that_is_a_view_is_never_written_over() -> None:
    # decode_chunk returns a reshaped view: a caller's view of that chunk has the memory's
    # owner as its base, not the entry, so the entry's reference count says nothing of it.
    lru = ChunkLRU(2 * CHUNK_BYTES)
    owner = np.full(16 * 16 * 16, 7, np.uint16)
    lru.put("a", 1, owner.reshape(16, 16, 16), take_ownership=True)
    held = lru.get("a", 1)[2:4]  # type: ignore[index]
    assert held.base is owner
    del owner
    lru.put("b", 1, chunk(1))  # full: the next decode takes the oldest entry's memory
    lru.take((16, 16, 16), np.dtype(np.uint16))[...] = 0
    lru.clear()
    lru.take((16, 16, 16), np.dtype(np.uint16))[...] = 0
    assert int(held.min()) == 7


def test_take_reuses_the_least_recently_used_entry_when_the_cache_is_full() -> None:
    lru = ChunkLRU(2 * CHUNK_BYTES)
    lru.put_many([(0, 1, chunk(0)), (1, 1, chunk(1))])
    oldest = _address(lru.peek_many([0])[0][1])  # type: ignore[arg-type]
    reused = lru.take((16, 16, 16), np.dtype(np.uint16))
    assert _address(reused) == oldest
    assert set(lru.peek_many([0, 1])) == {1}
    assert lru.stats()["evictions"] == 1
    lru.put(2, 1, reused, take_ownership=True)
    assert lru.stats()["bytes"] == 2 * CHUNK_BYTES


def test_pooled_memory_counts_within_the_bound_and_clear_can_release_it() -> None:
    lru = ChunkLRU(3 * CHUNK_BYTES)
    lru.put_many([(i, 1, chunk(i)) for i in range(3)])
    lru.clear()
    assert lru.stats()["pooled"] == 3 * CHUNK_BYTES
    lru.put("x", 1, chunk(9, height=32))  # two chunks' worth: pooled memory makes room
    stats = lru.stats()
    assert stats["bytes"] + stats["pooled"] <= 3 * CHUNK_BYTES and stats["entries"] == 1
    lru.clear(release=True)
    assert lru.stats()["pooled"] == 0


def test_decode_writes_into_recycled_memory_and_returns_read_only_arrays() -> None:
    from voxeldb.chunks import encode_chunk

    lru = ChunkLRU(10 * CHUNK_BYTES)
    lru.put("a", 1, chunk(1))
    address = _address(lru.peek_many(["a"])["a"][1])  # type: ignore[arg-type]
    lru.discard("a")
    blocks = np.arange(16 * 256, dtype=np.uint16).reshape(16, 16, 16) % 40
    decoded = lru.decode(encode_chunk(blocks), (16, 16, 16))
    assert _address(decoded) == address
    np.testing.assert_array_equal(decoded, blocks)
    assert not decoded.flags.writeable
    wide = lru.decode(encode_chunk(blocks.astype(np.uint32) + 70_000), (16, 16, 16))
    assert wide.dtype == np.uint32 and int(wide.min()) == 70_000
    taller = lru.decode(encode_chunk(np.zeros((32, 16, 16), np.uint16)), (16, 16, 16))
    assert taller.shape == (32, 16, 16)  # decoded as it is: the store refuses the shape
    with pytest.raises(ChunkFormatError, match="checksum"):
        lru.decode(encode_chunk(blocks)[:-1] + b"\x00", (16, 16, 16))
