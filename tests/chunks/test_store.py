"""The ChunkStore contract (CONTRACT §1, §4), one suite run against every backend and cache.

Like zarr's StoreTests: every test below runs on SQLite and PostgreSQL (``database_url``),
each with the in-process cache only and with Redis in front of the database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

import voxeldb
from tests._services import REDIS_TEST_URL, free_port
from voxeldb import ChunkStore, Database
from voxeldb.chunks import decode_chunk, encode_chunk
from voxeldb.errors import ChunkFormatError, CoordinateError, NotFoundError, ValidationError

HEIGHT = 64
MIN_Y = -16
SHAPE = (HEIGHT, 16, 16)


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(
    database_url: str, cache: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    if cache == "redis":
        redis_url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", request.getfixturevalue("redis_prefix"))
        database = voxeldb.connect(database_url, cache=redis_url)
        assert database.redis is not None
    else:
        database = voxeldb.connect(database_url, cache="memory")
        assert database.redis is None
    database.create_schema()
    yield database
    database.close()


@pytest.fixture
def world(db: Database) -> uuid.UUID:
    return db.create_world(f"w-{uuid.uuid4().hex[:8]}", {"height": HEIGHT, "min_y": MIN_Y})


@pytest.fixture
def store(db: Database, world: uuid.UUID) -> ChunkStore:
    return db.chunks(world)


def chunk(seed: int, dtype: Any = np.uint16, high: int = 20) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(abs(seed) * 2 + (seed < 0))
    blocks = rng.integers(0, high, size=SHAPE).astype(dtype)
    blocks[HEIGHT // 2 :] = 0  # air on top, like terrain
    return blocks


def second_view(db: Database, world: uuid.UUID, url: str) -> tuple[Database, ChunkStore]:
    """Another Database on the same database and Redis: its own, separate in-process cache."""
    other = voxeldb.connect(url, cache="memory" if db.redis is None else REDIS_TEST_URL)
    return other, other.chunks(world)


class Spy:
    """Counts calls of one of the store's backend primitives (the real method still runs)."""

    def __init__(self, store: ChunkStore, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Any] = []
        original = getattr(store, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            return original(*args, **kwargs)

        monkeypatch.setattr(store, name, wrapper)


# --- put / get ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_put_get_round_trip(store: ChunkStore, dtype: Any) -> None:
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


def test_put_replaces_and_does_not_alias_the_callers_array(store: ChunkStore) -> None:
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
def test_put_refuses_malformed_arrays(store: ChunkStore, blocks: Any, message: str) -> None:
    with pytest.raises(ChunkFormatError, match=message):
        store.put(0, 0, blocks)
    assert store.get(0, 0) is None


@pytest.mark.parametrize("bad", [1.5, "3", None, True, 2**40])
def test_non_integer_or_out_of_range_coordinates_are_refused(store: ChunkStore, bad: Any) -> None:
    with pytest.raises(CoordinateError, match="cx"):
        store.get(bad, 0)
    with pytest.raises(CoordinateError, match="cz"):
        store.put(0, bad, chunk(1))
    with pytest.raises(CoordinateError):
        store.region(0, 0, bad, 1)
    with pytest.raises(CoordinateError):
        store.delete(bad, 0)


def test_numpy_integer_coordinates_are_accepted(store: ChunkStore) -> None:
    store.put(np.int64(2), np.int32(-3), chunk(4))
    np.testing.assert_array_equal(store.get(2, -3), chunk(4))
    assert (2, -3) in store.region(np.int16(0), np.int16(-5), 5, 0)


# --- region ---------------------------------------------------------------------------


def test_region_is_the_inclusive_rectangle(store: ChunkStore) -> None:
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


def test_region_reads_in_batches_not_per_chunk(
    db: Database, world: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkStore.open(
        db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, redis=db.redis, batch_size=24
    )
    store.put_many((x, z, chunk(x + 100 * z)) for x in range(8) for z in range(6))
    db.lru.clear()
    if db.redis is not None:
        db.redis.discard_many(world.hex, [(x, z) for x in range(8) for z in range(6)])
    versions = Spy(store, "_db_versions", monkeypatch)
    data = Spy(store, "_db_data_rect", monkeypatch)
    by_key = Spy(store, "_db_data", monkeypatch)
    got = store.region(0, 0, 7, 5)  # 48 chunks, batches of 4 columns x 6 = 24
    assert len(got) == 48
    assert len(versions.calls) == 2
    assert len(data.calls) + len(by_key.calls) == 2
    # Hot: versions only, the data comes from the cache.
    got_again = store.region(0, 0, 7, 5)
    assert len(versions.calls) == 4
    assert len(data.calls) + len(by_key.calls) == 2
    for key, blocks in got_again.items():
        np.testing.assert_array_equal(blocks, got[key])


# --- put_many -------------------------------------------------------------------------


def test_put_many_streams_in_bounded_batches(
    db: Database, world: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkStore.open(db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, batch_size=10)
    produced = 0
    seen_at_write: list[tuple[int, int]] = []
    original = store._db_bulk_upsert

    def spy(conn: Any, rows: Any) -> None:
        seen_at_write.append((produced, len(rows)))
        original(conn, rows)

    monkeypatch.setattr(store, "_db_bulk_upsert", spy)

    def items() -> Iterator[tuple[int, int, np.ndarray[Any, Any]]]:
        nonlocal produced
        for i in range(35):
            produced += 1
            yield i, -i, chunk(i)

    assert store.put_many(items()) == 35
    # The iterable is consumed batch by batch: never more than one batch ahead of the DB.
    assert seen_at_write == [(10, 10), (20, 10), (30, 10), (35, 5)]
    assert len(store.region(0, -34, 34, 0)) == 35


def test_put_many_is_all_or_nothing(store: ChunkStore) -> None:
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


def test_put_many_replaces_and_later_duplicates_win(store: ChunkStore) -> None:
    store.put_many((x, 0, chunk(x)) for x in range(5))
    items = [(x, 0, chunk(100 + x)) for x in range(3, 8)] + [(4, 0, chunk(999))]
    assert store.put_many(items) == 6
    want = {0: 0, 1: 1, 2: 2, 3: 103, 4: 999, 5: 105, 6: 106, 7: 107}
    got = store.region(0, 0, 7, 0)
    assert set(got) == {(x, 0) for x in want}
    for x, seed in want.items():
        np.testing.assert_array_equal(got[(x, 0)], chunk(seed))
    assert store.put_many([]) == 0


# --- stream ---------------------------------------------------------------------------


def test_stream_is_nearest_first_and_complete(store: ChunkStore) -> None:
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
    assert [(x, z) for x, z, _ in store.stream(0, 0, 0)] == ([(0, 0)] if (0, 0) in stored else [])
    with pytest.raises(CoordinateError, match="radius"):
        store.stream(0, 0, -1)


def test_stream_encoded_yields_the_stored_bytes(store: ChunkStore) -> None:
    store.put_many((x, z, chunk(x * 5 + z)) for x in range(-2, 3) for z in range(-2, 3))
    out = list(store.stream(0, 0, 2, encoded=True))
    assert len(out) == 25
    for x, z, blob in out:
        assert isinstance(blob, bytes)
        np.testing.assert_array_equal(decode_chunk(blob), chunk(x * 5 + z))
        assert blob == encode_chunk(chunk(x * 5 + z))
    # A second pass (cached in Redis when present) gives the same bytes.
    assert [b for _, _, b in store.stream(0, 0, 2, encoded=True)] == [b for _, _, b in out]


def test_stream_is_lazy(store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_many((x, z, chunk(x + z)) for x in range(-10, 11) for z in range(-10, 11))
    versions = Spy(store, "_db_versions", monkeypatch)
    it = store.stream(0, 0, 10)
    assert versions.calls == []  # nothing read before the first next()
    first = next(it)
    assert first[:2] == (0, 0)
    assert len(versions.calls) == 1
    (rects,) = [args[1] for args in versions.calls]
    area = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in rects)
    assert area < 21 * 21 // 4  # only the centre of the square was read
    assert len(list(it)) == 21 * 21 - 1
    assert len(versions.calls) > 2


# --- blocks ---------------------------------------------------------------------------


def test_get_block_and_set_block(store: ChunkStore) -> None:
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


def test_y_outside_the_world_is_refused_with_the_range(store: ChunkStore) -> None:
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


def test_set_blocks_groups_edits_and_the_last_edit_wins(store: ChunkStore) -> None:
    store.put(0, 0, chunk(7))
    before = chunk(7)
    edits = [(x, y, z, "glass") for x in range(0, 40, 3) for y in (MIN_Y, 0, 10) for z in (-1, 2)]
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


def test_set_blocks_is_one_transaction(store: ChunkStore) -> None:
    store.set_block(0, 0, 0, "stone")
    with pytest.raises(ValidationError, match="type"):
        store.set_blocks([(0, 0, 0, "dirt"), (40, 0, 0, "dirt"), (1, 0, 0, {"axis": "x"})])
    assert store.get_block(0, 0, 0) == {"type": "stone"}
    assert store.get(2, 0) is None
    with pytest.raises(ValidationError, match="edit 0"):
        store.set_blocks([(0, 0, 0)])  # type: ignore[list-item]


def test_ids_past_uint16_upgrade_the_chunk_to_uint32(
    db: Database, world: uuid.UUID, store: ChunkStore
) -> None:
    store.put(0, 0, chunk(3))
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO block_states (world_id, state_id, state_key, state) "
                "VALUES (:w, 70000, :k, :s)"
            ),
            {
                "w": world if db.backend == "postgresql" else world.hex,
                "k": '{"type":"filler"}',
                "s": '{"type": "filler"}',
            },
        )
    store.set_block(1, 2, 3, "rare_block")  # gets id 70001
    blocks = store.get(0, 0)
    assert blocks is not None and blocks.dtype == np.uint32
    assert int(blocks[2 - MIN_Y, 3, 1]) == 70001
    assert store.get_block(1, 2, 3) == {"type": "rare_block"}
    expected = chunk(3).astype(np.uint32)
    expected[2 - MIN_Y, 3, 1] = 70001
    np.testing.assert_array_equal(blocks, expected)


# --- delete ---------------------------------------------------------------------------


def test_delete(store: ChunkStore) -> None:
    store.put(1, 1, chunk(1))
    assert store.delete(1, 1) is True
    assert store.get(1, 1) is None
    assert store.delete(1, 1) is False
    assert store.get_block(16, 0, 16) is None


# --- coherence between two Databases (separate in-process caches) ---------------------


def test_no_reader_sees_an_old_chunk_after_a_write(
    db: Database, world: uuid.UUID, database_url: str
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


# --- worlds ---------------------------------------------------------------------------


def test_world_settings_give_the_shape_and_ids_are_accepted_as_strings(db: Database) -> None:
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


def test_unknown_or_malformed_world_ids(db: Database) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        db.chunks(uuid.uuid4())
    with pytest.raises(ValidationError, match="UUID"):
        db.chunks("not-a-uuid")


def test_worlds_are_isolated(db: Database, store: ChunkStore) -> None:
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


def test_corrupt_stored_bytes_raise_chunk_format_error(
    db: Database, world: uuid.UUID, store: ChunkStore
) -> None:
    store.put(0, 0, chunk(1))
    db.lru.clear()
    if db.redis is not None:
        db.redis.discard_many(world.hex, [(0, 0)])
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE world_chunks SET data = :d, version = version + 1"), {"d": b"garbage"}
        )
    with pytest.raises(ChunkFormatError, match=r"chunk \(0, 0\)"):
        store.get(0, 0)


def test_an_unreachable_redis_only_costs_the_cache(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with voxeldb.connect(database_url, cache=f"redis://127.0.0.1:{free_port()}/0") as db:
        db.create_schema()
        store = db.chunks(db.create_world("w", {"height": HEIGHT, "min_y": MIN_Y}))
        with caplog.at_level(logging.WARNING, logger="voxeldb.cache"):
            for i in range(3):
                store.put(i, 0, chunk(i))
                np.testing.assert_array_equal(store.get(i, 0), chunk(i))
            store.set_block(0, 0, 0, "stone")
            assert store.get_block(0, 0, 0) == {"type": "stone"}
            assert len(list(store.stream(0, 0, 2, encoded=True))) == 3
        warnings = [r for r in caplog.records if r.name == "voxeldb.cache"]
        assert len(warnings) == 1


# --- edge cases found in review -------------------------------------------------------


def test_a_huge_sparse_region_takes_a_few_queries_not_one_per_column(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(-1_000, 5, chunk(1))
    store.put(999, -1_000, chunk(2))
    versions = Spy(store, "_db_versions", monkeypatch)
    got = store.region(-1_000, -1_000, 1_000, 1_000)  # 4M positions, 2 stored
    assert sorted(got) == [(-1_000, 5), (999, -1_000)]
    np.testing.assert_array_equal(got[(999, -1_000)], chunk(2))
    # Strips of whole columns would be one query per column here (2001).
    assert len(versions.calls) <= 4


def test_set_blocks_with_a_state_dict_mutated_between_edits(store: ChunkStore) -> None:
    def edits() -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        state: dict[str, Any] = {"type": "wool", "color": "red"}
        yield 0, 0, 0, state
        state["color"] = "blue"  # a generator reusing one dict, as a loop might
        yield 1, 0, 0, state

    assert store.set_blocks(edits()) == 2
    assert store.get_block(0, 0, 0) == {"type": "wool", "color": "red"}
    assert store.get_block(1, 0, 0) == {"type": "wool", "color": "blue"}


def test_get_block_results_are_the_callers_own_even_when_nested(store: ChunkStore) -> None:
    store.set_block(0, 0, 0, {"type": "chest", "items": ["apple"], "meta": {"n": 1}})
    first = store.get_block(0, 0, 0)
    assert first is not None
    first["items"].append("stolen")
    first["meta"]["n"] = 99
    assert store.get_block(0, 0, 0) == {"type": "chest", "items": ["apple"], "meta": {"n": 1}}


def test_set_blocks_refuses_bool_coordinates_mixed_with_ints(store: ChunkStore) -> None:
    with pytest.raises(CoordinateError, match="x must be an integer"):
        store.set_blocks([(0, 0, 0, "stone"), (True, 0, 0, "stone")])
    assert store.get(0, 0) is None


def test_put_many_of_nothing_and_a_generator_that_raises(store: ChunkStore) -> None:
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


def test_a_paused_stream_never_yields_a_chunk_another_process_replaced_meanwhile(
    db: Database, world: uuid.UUID, database_url: str
) -> None:
    # Batches of one: (3, 3) is read from the caches only after (2, 0) was handed out, as
    # the 1025th chunk of a band is with the default batch size.
    store = ChunkStore.open(
        db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, redis=db.redis, batch_size=1
    )
    other_db, other = second_view(db, world, database_url)
    try:
        store.put_many([(0, 0, chunk(0)), (2, 0, chunk(2)), (3, 3, chunk(3))])
        assert len(store.region(0, 0, 3, 3)) == 3  # this process caches every chunk
        stream = store.stream(0, 0, 3)
        assert next(stream)[:2] == (0, 0)
        assert next(stream)[:2] == (2, 0)
        other.put(3, 3, chunk(33))  # returns before the stream goes on
        cx, cz, blocks = next(stream)
        assert (cx, cz) == (3, 3)
        np.testing.assert_array_equal(blocks, chunk(33))
        assert list(stream) == []
    finally:
        other_db.close()


def test_put_many_memory_does_not_grow_with_the_number_of_items(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    world = db.create_world(f"flat-{uuid.uuid4().hex[:6]}", {"height": 16, "min_y": 0})
    store = ChunkStore.open(
        db.engine, world, height=16, min_y=0, lru=db.lru, redis=db.redis, batch_size=256
    )
    air = np.zeros((16, 16, 16), np.uint16)
    store.put_many((x, 0, air) for x in range(512))  # warm up: statement caches, pools
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        # 12,000 keys would take ~1.2 MB if anything per item were kept until the end.
        assert store.put_many((x, 1, air) for x in range(12_000)) == 12_000
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 600_000, peak
    assert len(store.region(11_998, 1, 12_005, 1)) == 2


@pytest.mark.parametrize("bad", [None, 5])
def test_put_many_and_set_blocks_refuse_what_is_not_iterable(store: ChunkStore, bad: Any) -> None:
    with pytest.raises(ValidationError, match="put_many takes an iterable"):
        store.put_many(bad)
    with pytest.raises(ValidationError, match="set_blocks takes an iterable"):
        store.set_blocks(bad)


def test_writes_to_a_world_deleted_meanwhile_are_not_found(
    db: Database, world: uuid.UUID, store: ChunkStore
) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM worlds WHERE id = :id"),
            {"id": world.hex if db.backend == "sqlite" else world},
        )
    with pytest.raises(NotFoundError, match=f"world {world} does not exist"):
        store.put(0, 0, chunk(0))
    with pytest.raises(NotFoundError, match=f"world {world} does not exist"):
        store.put_many([(0, 0, chunk(0))])
    with pytest.raises(NotFoundError, match=f"world {world} does not exist"):
        store.set_block(0, 0, 0, "stone")
    assert store.get(0, 0) is None


def test_put_many_duplicates_across_batches_the_last_wins(db: Database, world: uuid.UUID) -> None:
    store = ChunkStore.open(
        db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, redis=db.redis, batch_size=2
    )
    items = [(0, 0, chunk(1)), (1, 0, chunk(2)), (0, 0, chunk(3)), (-1, -1, chunk(4))]
    items += [(0, 0, chunk(5)), (1, 0, chunk(6))]
    assert store.put_many(iter(items)) == 6
    got = store.region(-1, -1, 1, 0)
    assert set(got) == {(0, 0), (1, 0), (-1, -1)}
    for key, seed in (((0, 0), 5), ((1, 0), 6), ((-1, -1), 4)):
        np.testing.assert_array_equal(got[key], chunk(seed))
