"""The read path (issue 9): round trips, query plans, dead connections, the LRU's recycled
memory as the store uses it, and the cache tiers as wrappers.

PostgreSQL's messages are counted with libpq's own trace of the read connection; the plans
are PostgreSQL's ``EXPLAIN`` of the very statements the store sent, on a table of 1.2 * 10^6
rows in three worlds.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import event, text

from tests.chunks.store_contract import HEIGHT, MIN_Y, chunk
from tests.chunks.test_store import Spy
from voxeldb import ChunkStore, Database
from voxeldb._engine import read_pool
from voxeldb.chunks import ChunkLRU, decode_chunk, encode_chunk
from voxeldb.chunks.caches import Found, LRUTier, Request

pg_only = pytest.mark.parametrize("backend", ["postgresql"])


class Trace:
    """libpq's trace of the store's read connection: the messages sent to the server."""

    def __init__(self, db: Database) -> None:
        pool = read_pool(db.engine)
        lease, _ = pool.acquire()
        pool.release(lease)
        self.conn = lease.conn
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.conn.pgconn.trace(self.file.fileno())
        self.conn.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )

    def sent(self) -> list[str]:
        """The frontend messages since the last call, by type (``Parse``, ``Sync``...)."""
        self.file.seek(0)
        lines = self.file.read().decode("utf-8", "replace").splitlines()
        self.file.seek(0)
        self.file.truncate()
        return [line.split("\t")[2].strip() for line in lines if line.startswith("F\t")]

    def close(self) -> None:
        self.conn.pgconn.untrace()
        self.file.close()


@pytest.fixture
def checkouts(db: Database) -> Iterator[list[object]]:
    """Every checkout from the engine's own pool (the one with BEGIN and ROLLBACK)."""
    seen: list[object] = []

    def on_checkout(*args: Any) -> None:
        seen.append(args)

    event.listen(db.engine, "checkout", on_checkout)
    yield seen
    event.remove(db.engine, "checkout", on_checkout)


@pg_only
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_a_cold_get_is_one_round_trip_and_a_cached_one_sends_no_data(
    db: Database, store: ChunkStore, checkouts: list[object]
) -> None:
    store.put(3, 4, chunk(1))
    store.lru.clear()
    store.get(3, 4)  # the read connection exists now
    trace = Trace(db)
    try:
        checkouts.clear()
        store.lru.clear()
        np.testing.assert_array_equal(store.get(3, 4), chunk(1))
        # One statement, one Sync: no ping, no BEGIN, no ROLLBACK, nothing else.
        sent = trace.sent()
        assert sent.count("Sync") == 1 and "Query" not in sent, sent
        assert checkouts == []
        cached = store.get(3, 4)
        assert trace.sent().count("Sync") == 1
        assert store.get(3, 4) is cached
        trace.sent()
        # Another process's write is seen through the same one statement.
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE world_chunks SET data = :d, version = version + 1"),
                {"d": encode_chunk(chunk(2))},
            )
        np.testing.assert_array_equal(store.get(3, 4), chunk(2))
        assert trace.sent().count("Sync") == 1
    finally:
        trace.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_sqlite_reads_check_out_nothing_and_see_every_commit(
    db: Database, store: ChunkStore, checkouts: list[object]
) -> None:
    """SQLite's reads run on connections of their own (``_engine.SQLiteReads``): no
    checkout of the engine's pool, one connection reused, and each read its own statement,
    so a write committed on another connection is seen at once (no snapshot kept)."""
    from voxeldb._engine import sqlite_reads

    store.put(3, 4, chunk(1))
    store.lru.clear()
    store.get(3, 4)
    reads = sqlite_reads(db.engine)
    assert reads is not None
    held = reads.acquire()
    reads.release(held)
    for version in (2, 3):
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE world_chunks SET data = :d, version = version + 1"),
                {"d": encode_chunk(chunk(version))},
            )
        checkouts.clear()
        np.testing.assert_array_equal(store.get(3, 4), chunk(version))
        assert checkouts == []
    again = reads.acquire()
    assert again is held  # last in, first out
    again.execute("BEGIN")
    reads.release(again)  # back inside a transaction: closed, not kept
    with pytest.raises(Exception, match="closed"):
        again.execute("SELECT 1")
    kept = reads.acquire()
    reads.release(kept)
    db.engine.dispose()  # the idle ones are closed with the engine's pool
    with pytest.raises(Exception, match="closed"):
        kept.execute("SELECT 1")


def test_sqlite_reads_are_for_file_databases_only() -> None:
    from voxeldb._engine import make_engine, sqlite_reads

    memory = make_engine("sqlite:///:memory:")
    try:
        assert sqlite_reads(memory) is None
    finally:
        memory.dispose()


@pg_only
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_a_walking_stream_step_is_two_statements(db: Database, store: ChunkStore) -> None:
    store.put_many((x, z, chunk(x + 31 * z)) for x in range(-9, 11) for z in range(-8, 9))
    list(store.stream(0, 0, 8, encoded=True))
    trace = Trace(db)
    try:
        for step in range(1, 3):
            assert len(list(store.stream(step, 0, 8, encoded=True))) == 17 * 17
            assert trace.sent().count("Sync") == 2  # the centre, then the rest
    finally:
        trace.close()


@pg_only
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_the_engines_pool_checks_out_without_a_round_trip(db: Database) -> None:
    db.engine.dispose()
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
    trace = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    try:
        raw.pgconn.trace(trace.fileno())
        raw.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        for _ in range(3):
            with db.engine.connect() as conn:
                assert conn.connection.driver_connection is raw  # the one pooled connection
        raw.pgconn.untrace()
        trace.seek(0)
        assert [line for line in trace.read().splitlines() if line.startswith(b"F")] == []
    finally:
        trace.close()


@pg_only
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_reads_survive_their_connection_being_killed(db: Database, store: ChunkStore) -> None:
    store.put(0, 0, chunk(1))
    store.get(0, 0)
    pool = read_pool(db.engine)
    lease, _ = pool.acquire()
    pid = lease.conn.info.backend_pid
    pool.release(lease)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    # The write's pooled connection was not the one killed; kill it too.
    with db.engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    store.lru.clear()
    np.testing.assert_array_equal(store.get(0, 0), chunk(1))
    store.put(1, 0, chunk(2))  # the engine's pool replaced its dead connection unasked
    np.testing.assert_array_equal(store.region(0, 0, 1, 0)[(1, 0)], chunk(2))


@pytest.mark.parametrize("cache_tier", ["memory"])
def test_a_cold_region_decodes_into_the_memory_of_arrays_nobody_holds(
    db: Database, store: ChunkStore
) -> None:
    store.put_many((x, z, chunk(x + 7 * z)) for x in range(4) for z in range(4))
    first = store.region(0, 0, 3, 3)
    held = first[(1, 1)][5:9]  # a view the caller keeps: its memory must never be reused
    kept = held.copy()
    addresses = {k: a.__array_interface__["data"][0] for k, a in first.items()}
    del first
    store.lru.clear()
    second = store.region(0, 0, 3, 3)
    reused = {
        k for k, a in second.items() if a.__array_interface__["data"][0] in addresses.values()
    }
    assert len(reused) == 15  # all but the one still held
    assert addresses[(1, 1)] not in {a.__array_interface__["data"][0] for a in second.values()}
    np.testing.assert_array_equal(held, kept)
    for (x, z), array in second.items():
        np.testing.assert_array_equal(array, chunk(x + 7 * z))
        assert not array.flags.writeable


def test_a_walking_players_stream_reads_only_the_new_chunks(
    db: Database, world: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkStore.open(
        db.engine, world, height=HEIGHT, min_y=MIN_Y, lru=db.lru, redis=db.redis
    )
    keys = [(x, z) for x in range(-4, 6) for z in range(-4, 5)]
    store.put_many((x, z, chunk(x + 100 * z)) for x, z in keys)
    for encoded in (True, False):
        db.lru.clear()
        if db.redis is not None:
            db.redis.discard_many(world.hex, keys)
        first = {(x, z): v for x, z, v in store.stream(0, 0, 4, encoded=encoded)}
        rows = Spy(store._backend, "rows", monkeypatch)
        step = {(x, z): v for x, z, v in store.stream(1, 0, 4, encoded=encoded)}
        monkeypatch.undo()
        assert len(step) == 81
        # Two statements (the centre, then the rest); data only for the column entered.
        assert len(rows.calls) == 2
        sent = sorted((x, z) for result in rows.results for x, z, _, data in result if data)
        assert sent == [(5, z) for z in range(-4, 5)]
        for key in first.keys() & step.keys():
            if encoded:
                assert step[key] == first[key]
            else:
                assert step[key] is first[key]


# --- the cache tiers as wrappers ---------------------------------------------------------


class FakeSource:
    """An innermost source standing for the database: ``{key: (version, array)}``, answering
    as the backend does (every stored key's version, the data only where it is not known);
    records the ``known`` of each request."""

    def __init__(self, rows: dict[tuple[int, int], tuple[int, np.ndarray[Any, Any]]]) -> None:
        self.rows = rows
        self.known: list[dict[tuple[int, int], int]] = []
        self.sent: list[list[tuple[int, int]]] = []
        self.discarded: list[tuple[int, int]] = []

    def fetch(self, request: Request) -> Found:
        self.known.append(dict(request.known))
        found = Found()
        sent = []
        for key in request.keys:
            if key in self.rows:
                version, array = self.rows[key]
                found.versions[key] = version
                if request.known.get(key) != version:
                    found.encoded[key] = encode_chunk(array)
                    if not request.encoded:
                        found.arrays[key] = array
                    sent.append(key)
        self.sent.append(sent)
        return found

    def written(self, items: Any, *, owned: bool = False) -> None:
        pass

    def discard(self, keys: Any) -> None:
        self.discarded.extend(keys)


def _decode(key: tuple[int, int], data: bytes) -> np.ndarray[Any, Any]:
    array = decode_chunk(data)
    array.flags.writeable = False
    return array


def test_the_lru_tier_answers_exact_versions_and_delegates_the_rest() -> None:
    a, b = chunk(1), chunk(2)
    a.flags.writeable = b.flags.writeable = False
    inner = FakeSource({(0, 0): (5, a), (1, 0): (7, b)})
    tier = LRUTier(ChunkLRU(10 * a.nbytes), "w", inner, _decode)
    keys = [(0, 0), (1, 0), (2, 0)]

    got = tier.fetch(Request(None, keys)).arrays
    assert set(got) == {(0, 0), (1, 0)}  # (2, 0) is stored nowhere
    assert inner.known == [{}] and inner.sent == [[(0, 0), (1, 0)]]

    got = tier.fetch(Request(None, keys)).arrays
    assert got[(0, 0)] is a and got[(1, 0)] is b
    # The database was told what the LRU holds, and sent nothing.
    assert inner.known[-1] == {(0, 0): 5, (1, 0): 7} and inner.sent[-1] == []

    inner.rows[(0, 0)] = (6, chunk(3))
    got = tier.fetch(Request(None, keys)).arrays  # a newer version: not served stale
    np.testing.assert_array_equal(got[(0, 0)], chunk(3))
    assert inner.sent[-1] == [(0, 0)]

    tier.discard([(1, 0)])
    assert inner.discarded == [(1, 0)]
    tier.fetch(Request(None, keys))
    assert inner.known[-1] == {(0, 0): 6}


def test_the_lru_tier_serves_encoded_reads_and_decodes_what_it_holds_as_bytes() -> None:
    a = chunk(1)
    inner = FakeSource({(0, 0): (5, a), (1, 0): (7, chunk(2))})
    tier = LRUTier(ChunkLRU(1 << 22), "w", inner, _decode)
    keys = [(0, 0), (1, 0)]
    blobs = tier.fetch(Request(None, keys, encoded=True)).encoded
    assert inner.sent[-1] == keys
    # Encoded again: from the LRU's bytes.
    assert tier.fetch(Request(None, keys, encoded=True)).encoded == blobs
    assert inner.known[-1] == {(0, 0): 5, (1, 0): 7} and inner.sent[-1] == []
    # Decoded: the bytes held are decoded here, not fetched again.
    arrays = tier.fetch(Request(None, keys)).arrays
    assert inner.sent[-1] == []
    np.testing.assert_array_equal(arrays[(0, 0)], a)
    assert not arrays[(0, 0)].flags.writeable
    assert tier.fetch(Request(None, keys)).arrays[(0, 0)] is arrays[(0, 0)]  # kept


def test_the_lru_tier_copies_a_callers_array_unless_it_is_owned() -> None:
    inner = FakeSource({(0, 0): (9, chunk(4)), (1, 0): (3, chunk(5))})
    lru = ChunkLRU(1 << 20)
    tier = LRUTier(lru, "w", inner, _decode)
    mine = chunk(4)
    tier.written([(0, 0, 9, None, mine)])
    mine[:] = 0  # the caller keeps editing its array
    np.testing.assert_array_equal(tier.fetch(Request(None, [(0, 0)])).arrays[(0, 0)], chunk(4))
    fresh = chunk(5)
    tier.written([(1, 0, 3, None, fresh)], owned=True)
    assert tier.fetch(Request(None, [(1, 0)])).arrays[(1, 0)] is fresh
    assert not fresh.flags.writeable
    assert inner.sent == [[], []]


# --- plans at 10^6 rows -----------------------------------------------------------------


class Recorder:
    """Stands for the read cursor and records what the store sends through it."""

    def __init__(self, cursor: Any, sent: list[tuple[str, Any]]) -> None:
        self._cursor = cursor
        self._sent = sent

    def execute(self, sql: str, params: Any) -> Any:
        self._sent.append((sql, params))
        return self._cursor.execute(sql, params)

    def fetchall(self) -> Any:
        return self._cursor.fetchall()


def _fill(url: str, worlds: list[tuple[uuid.UUID, int]], blob: bytes) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET synchronous_commit = off")
        for world, side in worlds:
            conn.execute(
                "INSERT INTO world_chunks (world_id, chunk_x, chunk_z, data, version) "
                "SELECT %s, x, z, %s, 4611686018427387904 + x * 65536 + z "
                "FROM generate_series(0, %s) x, generate_series(0, %s) z",
                (world, blob, side - 1, side - 1),
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE world_chunks")


@pg_only
@pytest.mark.slow
@pytest.mark.parametrize("cache_tier", ["memory"])
def test_reads_use_the_primary_key_at_a_million_rows_in_three_worlds(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"height": 16, "min_y": 0}
    worlds = [db.create_world(name, settings) for name in ("big", "left", "right")]
    blob = encode_chunk(np.zeros((16, 16, 16), np.uint16))
    _fill(database_url, [(worlds[0], 1000), (worlds[1], 320), (worlds[2], 320)], blob)
    store = db.chunks(worlds[0])
    sent: list[tuple[str, Any]] = []
    backend = store._backend
    real_acquire = backend._acquire_read

    def acquire(fresh: bool) -> Any:
        cursor, reused, lease = real_acquire(fresh)
        return Recorder(cursor, sent), reused, lease

    monkeypatch.setattr(backend, "_acquire_read", acquire)
    reads = {
        "a 1000x1 strip": lambda: store.region(0, 500, 999, 500),
        "a 32x32 region": lambda: store.region(100, 100, 131, 131),
        "a 2000x3 strip, half outside the world": lambda: store.region(-1000, 10, 999, 12),
        "a huge sparse rectangle": lambda: store.region(-9000, 990, 9000, 1500),
        "a stream": lambda: list(store.stream(500, 500, 20)),
        "a get": lambda: store.get(7, 7),
    }
    counts = {"a 1000x1 strip": 1000, "a 32x32 region": 1024}
    counts |= {"a 2000x3 strip, half outside the world": 3000, "a huge sparse rectangle": 10_000}
    counts |= {"a stream": 41 * 41, "a get": 1}
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as check:
        for what, read in reads.items():
            sent.clear()
            store.lru.clear()
            got = read()
            assert (1 if isinstance(got, np.ndarray) else len(got)) == counts[what], what
            assert sent, what
            for sql, params in sent:
                (plan,) = check.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
                nodes = list(_nodes(plan[0]["Plan"]))
                assert all("Seq Scan" not in n["Node Type"] for n in nodes), (what, plan)
                scans = [n for n in nodes if n["Node Type"] in ("Index Scan", "Bitmap Index Scan")]
                assert scans, (what, plan)
                for scan in scans:
                    # A descent to each column, never a range over the world's other columns.
                    assert scan["Index Name"] == "pk_world_chunks", (what, plan)
                    assert "chunk_x = " in scan["Index Cond"], (what, plan)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("cache_tier", ["memory"])
def test_arrays_handed_out_stay_valid_while_threads_read_write_and_evict(
    db: Database, world: uuid.UUID
) -> None:
    import threading

    # A cache of a dozen chunks under a 64-chunk world: reads keep evicting and recycling.
    lru = ChunkLRU(12 * 64 * 256 * 2)
    store = ChunkStore.open(db.engine, world, height=64, min_y=-16, lru=lru)
    keys = [(x, z) for x in range(8) for z in range(8)]

    def blocks(x: int, z: int, generation: int) -> np.ndarray[Any, Any]:
        return np.full((64, 16, 16), generation * 100 + x * 10 + z, np.uint16)

    store.put_many((x, z, blocks(x, z, 1)) for x, z in keys)
    errors: list[str] = []
    stop = threading.Event()

    def check(x: int, z: int, array: np.ndarray[Any, Any]) -> None:
        if int(array.min()) != int(array.max()) or int(array[0, 0, 0]) % 100 != x * 10 + z:
            errors.append(f"({x}, {z}) holds {np.unique(array)[:5]}")

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        held: list[tuple[int, int, np.ndarray[Any, Any]]] = []
        while not stop.is_set() and not errors:
            kind = int(rng.integers(0, 4))
            if kind == 0:
                got = list(store.region(0, 0, 7, 7).items())
            elif kind == 1:
                x, z = (int(v) for v in rng.integers(0, 8, 2))
                array = store.get(x, z)
                got = [] if array is None else [((x, z), array)]
            else:
                got = [((x, z), a) for x, z, a in store.stream(3, 4, 4)]
            for (x, z), array in got:
                check(x, z, array)
            held += [(x, z, a[int(rng.integers(0, 60)) :]) for (x, z), a in got[:3]]
            held = held[-20:]
            for x, z, view in held:  # what a caller kept must not change under it
                check(x, z, view)

    def writer() -> None:
        generation = 2
        while not stop.is_set() and not errors:
            x, z = keys[generation % len(keys)]
            store.put(x, z, blocks(x, z, generation % 600))
            generation += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    stop.wait(4.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert lru.stats()["reused"] > 0  # memory was recycled all along
