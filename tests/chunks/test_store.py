"""ChunkStore behaviour beyond the public contract: batching, laziness, bounded memory,
damaged rows, lost worlds, an unreachable Redis; the backend registry (the cache tiers and
the read path's costs are in ``test_read_path.py``).

The contract itself (``store_contract.ChunkStoreTests``) runs in ``test_store_contract.py``.
These tests run on every backend x cache tier too (``conftest.py``) and may look inside the
store (its backend, its batch size) to check how it does what the contract asks.
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
from tests._services import free_port
from tests.chunks.store_contract import HEIGHT, MIN_Y, chunk, second_view
from voxeldb import ChunkStore, Database
from voxeldb.chunks import register_backend
from voxeldb.chunks.backends import backend_class
from voxeldb.chunks.backends.sqlite import SQLiteBackend
from voxeldb.errors import (
    ChunkFormatError,
    ConcurrencyError,
    DatabaseUnavailableError,
    NotFoundError,
    ValidationError,
)


class Spy:
    """Counts calls of one of a backend's methods (the real method still runs)."""

    def __init__(self, target: object, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Any] = []
        self.results: list[Any] = []
        original = getattr(target, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            result = original(*args, **kwargs)
            self.results.append(result)
            return result

        monkeypatch.setattr(target, name, wrapper)


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
    rows = Spy(store._backend, "rows", monkeypatch)
    got = store.region(0, 0, 7, 5)  # 48 chunks, batches of 4 columns x 6 = 24
    assert len(got) == 48
    # One statement per batch, by rectangle, versions and data together.
    assert [args[1] for args in rows.calls] == [[(0, 0, 3, 5)], [(4, 0, 7, 5)]]
    assert all(data is not None for result in rows.results for *_, data in result)
    # Hot: the same statements name the versions held, and the data stays in the database.
    got_again = store.region(0, 0, 7, 5)
    assert len(rows.calls) == 4
    assert [len(args[3]) for args in rows.calls[2:]] == [24, 24]
    assert all(data is None for result in rows.results[2:] for *_, data in result)
    for key, blocks in got_again.items():
        assert blocks is got[key]  # the very arrays cached by the first read


def test_put_many_streams_in_bounded_batches(
    db: Database, world: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkStore.open(db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, batch_size=10)
    produced = 0
    seen_at_write: list[tuple[int, int]] = []
    original = store._backend.bulk_upsert

    def spy(conn: Any, rows: Any) -> Any:
        seen_at_write.append((produced, len(rows)))
        return original(conn, rows)

    monkeypatch.setattr(store._backend, "bulk_upsert", spy)

    def items() -> Iterator[tuple[int, int, np.ndarray[Any, Any]]]:
        nonlocal produced
        for i in range(35):
            produced += 1
            yield i, -i, chunk(i)

    assert store.put_many(items()) == 35
    assert [n for _, n in seen_at_write] == [10, 10, 10, 5]
    # The iterable is consumed batch by batch: never more than one batch ahead of the DB (the
    # next batch is encoded while the last one is written).
    written = 0
    for produced_then, n in seen_at_write:
        written += n
        assert produced_then <= written + 10, seen_at_write
    assert len(store.region(0, -34, 34, 0)) == 35


def test_stream_is_lazy(store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_many((x, z, chunk(x + z)) for x in range(-10, 11) for z in range(-10, 11))
    rows = Spy(store._backend, "rows", monkeypatch)
    it = store.stream(0, 0, 10)
    assert rows.calls == []  # nothing read before the first next()
    first = next(it)
    assert first[:2] == (0, 0)
    assert len(rows.calls) == 1
    (rects,) = [args[1] for args in rows.calls]
    area = sum((r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in rects)
    assert area < 21 * 21 // 4  # only the centre of the square was read
    assert len(list(it)) == 21 * 21 - 1
    # The rest of the square (432 positions, under one batch) in one more statement.
    assert len(rows.calls) == 2


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


def test_a_huge_sparse_region_takes_a_few_queries_not_one_per_column(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(-1_000, 5, chunk(1))
    store.put(999, -1_000, chunk(2))
    versions = Spy(store._backend, "versions", monkeypatch)
    got = store.region(-1_000, -1_000, 1_000, 1_000)  # 4M positions, 2 stored
    assert sorted(got) == [(-1_000, 5), (999, -1_000)]
    np.testing.assert_array_equal(got[(999, -1_000)], chunk(2))
    # Strips of whole columns would be one query per column here (2001).
    assert len(versions.calls) <= 4


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


# --- the backend registry ---------------------------------------------------------------


def test_backends_are_chosen_by_dialect_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend_class("sqlite") is SQLiteBackend
    assert backend_class("postgresql").name == "postgresql"
    with pytest.raises(ValidationError, match="no chunk store for database backend 'oracle'"):
        backend_class("oracle")
    from voxeldb.chunks import backends

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    register_backend("oracle", SQLiteBackend)
    assert backend_class("oracle") is SQLiteBackend


def test_open_picks_the_engines_backend(db: Database, world: uuid.UUID) -> None:
    store = ChunkStore.open(db.engine, str(world), height=HEIGHT, min_y=MIN_Y)
    assert store.backend == db.backend
    store.put(0, 0, chunk(1))
    np.testing.assert_array_equal(db.chunks(world).get(0, 0), chunk(1))
    with pytest.raises(ValidationError, match="batch_size"):
        ChunkStore.open(db.engine, world, height=HEIGHT, min_y=MIN_Y, batch_size=0)
    with pytest.raises(ValidationError, match="height"):
        ChunkStore.open(db.engine, world, height=20, min_y=MIN_Y)


# --- the cache tiers as wrappers ----------------------------------------------------------


@pytest.mark.parametrize("cache_tier", ["redis"])
def test_a_redis_entry_of_another_worlds_shape_is_a_miss(
    db: Database, world: uuid.UUID, store: ChunkStore
) -> None:
    assert db.redis is not None
    store.put(0, 0, chunk(1))
    # Overwrite the Redis entry of (0, 0) at its current version with a 16-high chunk.
    with db.engine.connect() as conn:
        (current,) = conn.execute(
            text("SELECT version FROM world_chunks WHERE chunk_x = 0 AND chunk_z = 0")
        ).one()
    db.redis.put_many(world.hex, [(0, 0, current, None, np.ones((16, 16, 16), np.uint16))])
    db.lru.clear()
    np.testing.assert_array_equal(store.get(0, 0), chunk(1))


# --- driver errors and the retry policy -------------------------------------------------


class Busy(Exception):
    """Stands for a deadlock or "database is locked": classified transient below."""


class Gone(Exception):
    """Stands for a lost connection: classified as a disconnect below."""


@pytest.fixture
def fake_kinds(store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's backend classifies Busy as transient and Gone as a disconnect; the retry
    policy does not wait (its backoff is not what these tests are about)."""
    import voxeldb._retry

    backend = store._backend
    real = backend.classify

    def classify(exc: BaseException) -> Any:
        if isinstance(exc, Busy):
            return "transient"
        if isinstance(exc, Gone):
            return "disconnect"
        return real(exc)

    monkeypatch.setattr(backend, "classify", classify)
    monkeypatch.setattr(voxeldb._retry, "FIRST_WAIT", 0.0)
    monkeypatch.setattr(voxeldb._retry, "MAX_WAIT", 0.0)


@pytest.mark.usefixtures("fake_kinds")
def test_transient_write_conflicts_are_retried_then_a_concurrency_error(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = store._backend
    real_upsert = backend.upsert
    failures = {"left": 3, "calls": 0}

    def flaky(conn: Any, rows: Any) -> Any:
        failures["calls"] += 1
        if failures["left"]:
            failures["left"] -= 1
            raise Busy("locked")
        return real_upsert(conn, rows)

    monkeypatch.setattr(backend, "upsert", flaky)
    store.put(0, 0, chunk(1))
    assert failures["calls"] == 4  # three conflicts, then the write
    np.testing.assert_array_equal(store.get(0, 0), chunk(1))

    failures["left"] = 10**9
    with pytest.raises(ConcurrencyError, match="a chunk write kept conflicting") as info:
        store.put(0, 0, chunk(2))
    assert isinstance(info.value.__cause__, Busy)
    np.testing.assert_array_equal(store.get(0, 0), chunk(1))  # nothing was written

    def broken(conn: Any, rows: Any) -> Any:
        failures["calls"] += 1
        raise KeyError("a bug, not a conflict")

    monkeypatch.setattr(backend, "upsert", broken)
    failures["calls"] = 0
    with pytest.raises(KeyError):
        store.put(0, 0, chunk(3))
    assert failures["calls"] == 1  # not retried


@pytest.mark.usefixtures("fake_kinds")
def test_a_lost_connection_is_database_unavailable(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(0, 0, chunk(1))
    store.lru.clear()
    if store.redis is not None:
        store.redis.discard_many(store.world_id.hex, [(0, 0)])

    def gone(*args: Any) -> Any:
        raise Gone("server closed the connection")

    monkeypatch.setattr(store._backend, "rows", gone)
    monkeypatch.setattr(store._backend, "delete", gone)
    with pytest.raises(DatabaseUnavailableError, match=r"lost the connection .*Gone"):
        store.get(0, 0)  # lost twice: on a pooled connection, then on a new one
    with pytest.raises(DatabaseUnavailableError, match="server closed"):
        store.delete(0, 0)


@pytest.mark.usefixtures("fake_kinds")
def test_a_read_lost_on_a_pooled_connection_runs_again_once_on_a_new_one(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(0, 0, chunk(1))
    assert store.get(0, 0) is not None  # the read connection is now pooled
    store.lru.clear()
    if store.redis is not None:
        store.redis.discard_many(store.world_id.hex, [(0, 0)])
    backend = store._backend
    real_rows = backend.rows
    attempts: list[bool] = []
    real_acquire = backend._acquire_read

    def acquire(fresh: bool) -> Any:
        handle, _, lease = real_acquire(fresh)
        # SQLite has no pool of its own: say the connection was pooled, as on PostgreSQL.
        attempts.append(fresh)
        return handle, True, lease

    def flaky(*args: Any) -> Any:
        if len(attempts) == 1:
            raise Gone("the server went away while the connection was idle")
        return real_rows(*args)

    monkeypatch.setattr(backend, "_acquire_read", acquire)
    monkeypatch.setattr(backend, "rows", flaky)
    np.testing.assert_array_equal(store.get(0, 0), chunk(1))
    assert attempts == [False, True]  # once more, on a new connection
    attempts.clear()

    def broken(*args: Any) -> Any:
        attempts.append(True)
        raise KeyError("a bug, not a lost connection")

    monkeypatch.setattr(backend, "rows", broken)
    store.lru.clear()
    with pytest.raises(KeyError):
        store.get(0, 0)
    assert len(attempts) == 2  # one acquire, one call: not run again


def test_driver_errors_maps_only_what_it_is_told() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from voxeldb.errors import driver_errors

    lost = OperationalError("SELECT 1", {}, Exception("connection refused"))
    with pytest.raises(DatabaseUnavailableError, match=r"cannot reach .*connection refused"):
        with driver_errors(unavailable="cannot reach"):
            raise lost
    fk = IntegrityError("INSERT", {}, Exception("FOREIGN KEY constraint failed"))
    with pytest.raises(NotFoundError, match="no such world"):
        with driver_errors(lambda exc: "foreign_key", foreign_key="no such world"):
            raise fk
    with pytest.raises(IntegrityError):  # not told what a foreign-key error means
        with driver_errors(lambda exc: "foreign_key"):
            raise fk
    with pytest.raises(ValidationError, match="bad: Exception: FOREIGN KEY"):
        with driver_errors(lambda exc: None, otherwise=lambda r: ValidationError(f"bad: {r}")):
            raise fk
    with pytest.raises(ZeroDivisionError):  # not a driver error: untouched
        with driver_errors(otherwise=lambda r: ValidationError(r)):
            raise ZeroDivisionError
