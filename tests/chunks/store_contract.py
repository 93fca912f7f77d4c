"""``ChunkStoreTests``: the ChunkStore contract as a reusable suite (zarr's ``StoreTests``).

A subclass names a backend (``backend_name``: a key of ``tests._services`` databases, i.e. an
SQLAlchemy dialect) and a cache tier (``cache_tier``: ``"memory"`` for the in-process LRU
only, ``"redis"`` for the LRU in front of Redis); every test then runs against a fresh
database of that backend. The tests use public methods only (``voxeldb.connect``,
``Database.create_world``/``chunks``, the ``ChunkStore`` methods), so a new backend passes
them or is not done. ``test_store_contract.py`` runs them for every backend x tier.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

import voxeldb
from tests._services import REDIS_TEST_URL
from voxeldb import ChunkStore, Database
from voxeldb.chunks import decode_chunk, encode_chunk
from voxeldb.errors import ChunkFormatError, CoordinateError, NotFoundError, ValidationError

__all__ = ["HEIGHT", "MIN_Y", "SHAPE", "ChunkStoreTests", "chunk", "open_database", "second_view"]

HEIGHT = 64
MIN_Y = -16
SHAPE = (HEIGHT, 16, 16)


def chunk(seed: int, dtype: Any = np.uint16, high: int = 20) -> np.ndarray[Any, Any]:
    """A deterministic chunk of this world's shape: random ids below, air on top."""
    rng = np.random.default_rng(abs(seed) * 2 + (seed < 0))
    blocks = rng.integers(0, high, size=SHAPE).astype(dtype)
    blocks[HEIGHT // 2 :] = 0  # air on top, like terrain
    return blocks


def open_database(
    url: str, tier: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Database:
    """``voxeldb.connect(url)`` with the cache ``tier`` (Redis under a prefix of the test's own)."""
    if tier == "redis":
        redis_url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", request.getfixturevalue("redis_prefix"))
        database = voxeldb.connect(url, cache=redis_url)
        assert database.redis is not None
    else:
        assert tier == "memory", tier
        database = voxeldb.connect(url, cache="memory")
        assert database.redis is None
    database.create_schema()
    return database


def second_view(db: Database, world: uuid.UUID, url: str) -> tuple[Database, ChunkStore]:
    """Another Database on the same database and Redis: its own, separate in-process cache."""
    other = voxeldb.connect(url, cache="memory" if db.redis is None else REDIS_TEST_URL)
    return other, other.chunks(world)


class ChunkStoreTests:
    """The contract of ``ChunkStore`` (put, put_many, get, region, stream, get_block,
    set_block, set_blocks, delete), through public methods only."""

    backend_name: ClassVar[str]
    cache_tier: ClassVar[str] = "memory"

    @pytest.fixture
    def backend(self) -> str:
        """Overrides the root conftest's parametrized ``backend``: ``database_url`` follows."""
        return self.backend_name

    @pytest.fixture
    def db(
        self, database_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Database]:
        database = open_database(database_url, self.cache_tier, request, monkeypatch)
        yield database
        database.close()

    @pytest.fixture
    def world(self, db: Database) -> uuid.UUID:
        return db.create_world(f"w-{uuid.uuid4().hex[:8]}", {"height": HEIGHT, "min_y": MIN_Y})

    @pytest.fixture
    def store(self, db: Database, world: uuid.UUID) -> ChunkStore:
        store = db.chunks(world)
        assert store.backend == self.backend_name
        return store

    @pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
    def test_put_get_round_trip(self, store: ChunkStore, dtype: Any) -> None:
        blocks = chunk(1, dtype, high=70_000 if dtype == np.uint32 else 20)
        store.put(3, -7, blocks)
        got = store.get(3, -7)
        assert got is not None
        assert got.dtype == dtype and got.shape == SHAPE
        np.testing.assert_array_equal(got, blocks)
        # Reads hand out read-only arrays (shared with the cache): edits need a copy.
        assert not got.flags.writeable
        assert store.get(3, -6) is None
        assert store.get(-7, 3) is None

    def test_put_replaces_and_does_not_alias_the_callers_array(self, store: ChunkStore) -> None:
        blocks = chunk(1)
        store.put(0, 0, blocks)
        blocks[0, 0, 0] = 999  # the caller's array stays its own
        got = store.get(0, 0)
        assert got is not None and got[0, 0, 0] != 999
        store.put(0, 0, chunk(2))
        np.testing.assert_array_equal(store.get(0, 0), chunk(2))

    @pytest.mark.parametrize(
        ("blocks", "message"),
        [
            (np.zeros((HEIGHT, 16, 15), np.uint16), "shape"),
            (np.zeros((HEIGHT + 16, 16, 16), np.uint16), "shape"),
            (np.zeros(SHAPE, np.int32), "dtype"),
            (np.zeros(SHAPE, np.float64), "dtype"),
            ([[0] * 16] * 16, "numpy array"),
        ],
    )
    def test_put_refuses_malformed_arrays(
        self, store: ChunkStore, blocks: Any, message: str
    ) -> None:
        with pytest.raises(ChunkFormatError, match=message):
            store.put(0, 0, blocks)
        assert store.get(0, 0) is None

    @pytest.mark.parametrize("bad", [1.5, "3", None, True, 2**40])
    def test_non_integer_or_out_of_range_coordinates_are_refused(
        self, store: ChunkStore, bad: Any
    ) -> None:
        with pytest.raises(CoordinateError, match="cx"):
            store.get(bad, 0)
        with pytest.raises(CoordinateError, match="cz"):
            store.put(0, bad, chunk(1))
        with pytest.raises(CoordinateError):
            store.region(0, 0, bad, 1)
        with pytest.raises(CoordinateError):
            store.delete(bad, 0)

    def test_numpy_integer_coordinates_are_accepted(self, store: ChunkStore) -> None:
        store.put(np.int64(2), np.int32(-3), chunk(4))
        np.testing.assert_array_equal(store.get(2, -3), chunk(4))
        assert (2, -3) in store.region(np.int16(0), np.int16(-5), 5, 0)

    def test_region_is_the_inclusive_rectangle(self, store: ChunkStore) -> None:
        stored = {(x, z) for x in range(-3, 3) for z in range(-2, 4) if (x + z) % 3}
        assert store.put_many((x, z, chunk(x * 31 + z)) for x, z in sorted(stored)) == len(stored)
        got = store.region(-2, -1, 1, 2)
        want = {k for k in stored if -2 <= k[0] <= 1 and -1 <= k[1] <= 2}
        assert set(got) == want
        for (x, z), blocks in got.items():
            np.testing.assert_array_equal(blocks, chunk(x * 31 + z))
        assert set(store.region(-3, -2, -3, -2)) == ({(-3, -2)} & stored)
        assert store.region(100, 100, 110, 110) == {}
        with pytest.raises(CoordinateError, match="cx0 <= cx1"):
            store.region(2, 0, 1, 0)

    def test_put_many_is_all_or_nothing(self, store: ChunkStore) -> None:
        store.put(0, 0, chunk(0))

        def items() -> Iterator[tuple[int, int, Any]]:
            for i in range(1500):  # past the first batch (1024), which is written by then
                yield i, 0, chunk(i + 1)
            yield 5000, 0, np.zeros((HEIGHT, 16, 16), np.int8)

        with pytest.raises(ChunkFormatError, match="put_many item 1500"):
            store.put_many(items())
        np.testing.assert_array_equal(store.get(0, 0), chunk(0))
        assert store.get(1, 0) is None
        assert store.get(1499, 0) is None

        def failing() -> Iterator[tuple[int, int, Any]]:
            yield 1, 0, chunk(1)
            raise RuntimeError("generator failed")

        with pytest.raises(RuntimeError):
            store.put_many(failing())
        assert store.get(1, 0) is None
        with pytest.raises(ValidationError, match="item 0"):
            store.put_many([(1, 2)])  # type: ignore[list-item]

    def test_put_many_replaces_and_later_duplicates_win(self, store: ChunkStore) -> None:
        store.put_many((x, 0, chunk(x)) for x in range(5))
        items = [(x, 0, chunk(100 + x)) for x in range(3, 8)] + [(4, 0, chunk(999))]
        assert store.put_many(items) == 6
        want = {0: 0, 1: 1, 2: 2, 3: 103, 4: 999, 5: 105, 6: 106, 7: 107}
        got = store.region(0, 0, 7, 0)
        assert set(got) == {(x, 0) for x in want}
        for x, seed in want.items():
            np.testing.assert_array_equal(got[(x, 0)], chunk(seed))
        assert store.put_many([]) == 0

    def test_stream_is_nearest_first_and_complete(self, store: ChunkStore) -> None:
        stored = {(x, z) for x in range(-6, 7) for z in range(-6, 7) if (x * 7 + z * 3) % 4}
        store.put_many((x, z, chunk(x * 13 + z)) for x, z in sorted(stored))
        out = list(store.stream(1, -1, 4))
        keys = [(x, z) for x, z, _ in out]
        want = {(x, z) for x, z in stored if abs(x - 1) <= 4 and abs(z + 1) <= 4}
        assert set(keys) == want and len(keys) == len(want)
        dists = [(x - 1) ** 2 + (z + 1) ** 2 for x, z in keys]
        assert dists == sorted(dists)
        # Ties come in a deterministic order: the same on every call.
        assert [(x, z) for x, z, _ in store.stream(1, -1, 4)] == keys
        for x, z, blocks in out:
            np.testing.assert_array_equal(blocks, chunk(x * 13 + z))
        assert [(x, z) for x, z, _ in store.stream(0, 0, 0)] == (
            [(0, 0)] if (0, 0) in stored else []
        )
        with pytest.raises(CoordinateError, match="radius"):
            store.stream(0, 0, -1)

    def test_stream_encoded_yields_the_stored_bytes(self, store: ChunkStore) -> None:
        store.put_many((x, z, chunk(x * 5 + z)) for x in range(-2, 3) for z in range(-2, 3))
        out = list(store.stream(0, 0, 2, encoded=True))
        assert len(out) == 25
        for x, z, blob in out:
            assert isinstance(blob, bytes)
            np.testing.assert_array_equal(decode_chunk(blob), chunk(x * 5 + z))
            assert blob == encode_chunk(chunk(x * 5 + z))
        # A second pass (cached in Redis when present) gives the same bytes.
        assert [b for _, _, b in store.stream(0, 0, 2, encoded=True)] == [b for _, _, b in out]

    def test_get_block_and_set_block(self, store: ChunkStore) -> None:
        assert store.get_block(5, 0, 5) is None  # chunk not stored
        store.set_block(5, 0, 5, "stone")
        assert store.get_block(5, 0, 5) == {"type": "stone"}
        assert store.get_block(5, 1, 5) == {"type": "air"}  # the new chunk is air elsewhere
        log = {"type": "oak_log", "axis": "y"}
        store.set_block(-1, MIN_Y, -17, log)
        assert store.get_block(-1, MIN_Y, -17) == log
        # Block (-1, y, -17) lives in chunk (-1, -2) at local (15, y - min_y, 15).
        blocks = store.get(-1, -2)
        assert (
            blocks is not None
            and blocks[0, 15, 15] != 0
            and int(blocks.sum()) == int(blocks[0, 15, 15])
        )
        store.set_block(-1, MIN_Y, -17, "air")
        assert store.get_block(-1, MIN_Y, -17) == {"type": "air"}
        returned = store.get_block(5, 0, 5)
        assert returned is not None
        returned["type"] = "changed"  # a caller's copy: the registry is not affected
        assert store.get_block(5, 0, 5) == {"type": "stone"}

    def test_y_outside_the_world_is_refused_with_the_range(self, store: ChunkStore) -> None:
        for y in (MIN_Y - 1, MIN_Y + HEIGHT):
            with pytest.raises(CoordinateError, match=rf"\[{MIN_Y}, {MIN_Y + HEIGHT}\)"):
                store.set_block(0, y, 0, "stone")
            with pytest.raises(ValueError, match="outside"):
                store.get_block(0, y, 0)
        with pytest.raises(CoordinateError, match="edit 1"):
            store.set_blocks([(0, 0, 0, "stone"), (0, MIN_Y + HEIGHT, 0, "stone")])
        assert store.get(0, 0) is None
        with pytest.raises(CoordinateError, match="integer"):
            store.set_block(0.5, 0, 0, "stone")  # type: ignore[arg-type]

    def test_set_blocks_groups_edits_and_the_last_edit_wins(self, store: ChunkStore) -> None:
        store.put(0, 0, chunk(7))
        before = chunk(7)
        edits = [
            (x, y, z, "glass") for x in range(0, 40, 3) for y in (MIN_Y, 0, 10) for z in (-1, 2)
        ]
        edits += [(0, 0, 2, "stone"), (0, 0, 2, {"type": "lamp", "lit": True})]
        assert store.set_blocks(edits) == len(edits)
        assert store.get_block(0, 0, 2) == {"type": "lamp", "lit": True}
        assert store.get_block(39, 10, -1) == {"type": "glass"}
        assert set(store.region(0, -1, 2, 0)) == {(0, 0), (1, 0), (2, 0), (0, -1), (1, -1), (2, -1)}
        # Blocks not edited keep their values.
        after = store.get(0, 0)
        assert after is not None
        edited = np.zeros(SHAPE, bool)
        for x, y, z, _ in edits:
            if x >> 4 == 0 and z >> 4 == 0:
                edited[y - MIN_Y, z & 15, x & 15] = True
        np.testing.assert_array_equal(after[~edited], before[~edited])
        assert store.set_blocks([]) == 0
        assert store.set_blocks(iter([(1, 1, 1, "stone")])) == 1

    def test_set_blocks_is_one_transaction(self, store: ChunkStore) -> None:
        store.set_block(0, 0, 0, "stone")
        with pytest.raises(ValidationError, match="type"):
            store.set_blocks([(0, 0, 0, "dirt"), (40, 0, 0, "dirt"), (1, 0, 0, {"axis": "x"})])
        assert store.get_block(0, 0, 0) == {"type": "stone"}
        assert store.get(2, 0) is None
        with pytest.raises(ValidationError, match="edit 0"):
            store.set_blocks([(0, 0, 0)])  # type: ignore[list-item]

    def test_delete(self, store: ChunkStore) -> None:
        store.put(1, 1, chunk(1))
        assert store.delete(1, 1) is True
        assert store.get(1, 1) is None
        assert store.delete(1, 1) is False
        assert store.get_block(16, 0, 16) is None

    def test_no_reader_sees_an_old_chunk_after_a_write(
        self, db: Database, world: uuid.UUID, database_url: str
    ) -> None:
        store = db.chunks(world)
        other_db, other = second_view(db, world, database_url)
        try:
            store.put_many((x, 0, chunk(x)) for x in range(4))
            assert len(other.region(0, 0, 3, 0)) == 4  # cached by the other view
            hits = other_db.lru.stats()["hits"]
            assert len(other.region(0, 0, 3, 0)) == 4
            assert other_db.lru.stats()["hits"] == hits + 4  # served from its cache

            store.put(0, 0, chunk(50))
            np.testing.assert_array_equal(other.get(0, 0), chunk(50))
            store.set_block(16, 0, 0, "gold_block")
            assert other.get_block(16, 0, 0) == {"type": "gold_block"}
            store.put_many([(2, 0, chunk(52))])
            np.testing.assert_array_equal(other.region(0, 0, 3, 0)[(2, 0)], chunk(52))
            # Deleted and stored again: the new row must not pass for the old cached one.
            store.delete(3, 0)
            assert other.get(3, 0) is None
            store.put(3, 0, chunk(3))
            other.get(3, 0)
            store.delete(3, 0)
            store.put(3, 0, chunk(53))
            np.testing.assert_array_equal(other.get(3, 0), chunk(53))
        finally:
            other_db.close()

    def test_world_settings_give_the_shape_and_ids_are_accepted_as_strings(
        self, db: Database
    ) -> None:
        wid = db.create_world(f"tall-{uuid.uuid4().hex[:6]}", {"height": 32, "min_y": 100})
        store = db.chunks(str(wid))
        assert (store.height, store.min_y) == (32, 100)
        store.set_block(0, 131, 0, "stone")
        blocks = store.get(0, 0)
        assert blocks is not None and blocks.shape == (32, 16, 16) and blocks[31, 0, 0] != 0
        with pytest.raises(CoordinateError, match=r"\[100, 132\)"):
            store.set_block(0, 99, 0, "stone")
        default = db.chunks(db.create_world(f"default-{uuid.uuid4().hex[:6]}"))
        assert (default.height, default.min_y) == (384, -64)

    def test_unknown_or_malformed_world_ids(self, db: Database) -> None:
        with pytest.raises(NotFoundError, match="does not exist"):
            db.chunks(uuid.uuid4())
        with pytest.raises(ValidationError, match="UUID"):
            db.chunks("not-a-uuid")

    def test_worlds_are_isolated(self, db: Database, store: ChunkStore) -> None:
        other = db.chunks(
            db.create_world(f"other-{uuid.uuid4().hex[:6]}", {"height": HEIGHT, "min_y": MIN_Y})
        )
        store.put(0, 0, chunk(1))
        other.put(0, 0, chunk(2))
        np.testing.assert_array_equal(store.get(0, 0), chunk(1))
        np.testing.assert_array_equal(other.get(0, 0), chunk(2))
        store.set_block(0, 0, 0, "only_here")
        other_blocks = other.get(0, 0)
        assert other_blocks is not None
        assert other_blocks[0 - MIN_Y, 0, 0] == chunk(2)[0 - MIN_Y, 0, 0]

    def test_set_blocks_with_a_state_dict_mutated_between_edits(self, store: ChunkStore) -> None:
        def edits() -> Iterator[tuple[int, int, int, dict[str, Any]]]:
            state: dict[str, Any] = {"type": "wool", "color": "red"}
            yield 0, 0, 0, state
            state["color"] = "blue"  # a generator reusing one dict, as a loop might
            yield 1, 0, 0, state

        assert store.set_blocks(edits()) == 2
        assert store.get_block(0, 0, 0) == {"type": "wool", "color": "red"}
        assert store.get_block(1, 0, 0) == {"type": "wool", "color": "blue"}

    def test_get_block_results_are_the_callers_own_even_when_nested(
        self, store: ChunkStore
    ) -> None:
        store.set_block(0, 0, 0, {"type": "chest", "items": ["apple"], "meta": {"n": 1}})
        first = store.get_block(0, 0, 0)
        assert first is not None
        first["items"].append("stolen")
        first["meta"]["n"] = 99
        assert store.get_block(0, 0, 0) == {"type": "chest", "items": ["apple"], "meta": {"n": 1}}

    def test_set_blocks_refuses_bool_coordinates_mixed_with_ints(self, store: ChunkStore) -> None:
        with pytest.raises(CoordinateError, match="x must be an integer"):
            store.set_blocks([(0, 0, 0, "stone"), (True, 0, 0, "stone")])
        assert store.get(0, 0) is None

    def test_put_many_of_nothing_and_a_generator_that_raises(self, store: ChunkStore) -> None:
        assert store.put_many([]) == 0
        assert store.put_many(iter(())) == 0

        def items() -> Iterator[tuple[int, int, np.ndarray[Any, Any]]]:
            yield 0, 0, chunk(1)
            yield 0, 0, chunk(2)  # the same key twice in one call
            raise RuntimeError("generator failed")

        with pytest.raises(RuntimeError, match="generator failed"):
            store.put_many(items())
        assert store.get(0, 0) is None
        assert store.set_blocks([]) == 0

    @pytest.mark.parametrize("bad", [None, 5])
    def test_put_many_and_set_blocks_refuse_what_is_not_iterable(
        self, store: ChunkStore, bad: Any
    ) -> None:
        with pytest.raises(ValidationError, match="put_many takes an iterable"):
            store.put_many(bad)
        with pytest.raises(ValidationError, match="set_blocks takes an iterable"):
            store.set_blocks(bad)
