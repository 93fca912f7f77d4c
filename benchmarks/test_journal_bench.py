"""The world journal's costs, each figure beside its baseline in the same run.

Run: ``pytest benchmarks/test_journal_bench.py --benchmark-only --benchmark-columns=median,ops``;
the "journal ratios" section at the end prints what issue 10 asks for. With
``--benchmark-disable`` everything runs once on small inputs, as a test.

- ``set_blocks``: 10,000 edits over 100 chunks, journal on and off (the private switch
  ``voxeldb.chunks._journal._ENABLED``). Wanted: >= 150k edits/s and >= 0.7x off.
- ``put_many``: 1024 new terrain chunks (PostgreSQL), journal on and off. Wanted: >= 0.85x.
- ``watch``: another process writes 200 single edits; the delay from each commit to its
  arrival at ``watch`` (PostgreSQL, LISTEN/NOTIFY). Wanted: p50 <= 20 ms, p99 <= 100 ms.
- ``rollback``: undo 100,000 block edits of one actor, beside the ``set_blocks`` that made
  them. Wanted: <= 3x.
- ``changes``: a 4x4-chunk, 1-hour query over a journal of 10^6 entries in 1,000 chunks
  (written by COPY, spread over 40 days). Wanted: <= 50 ms.
- ``prune``: the 30 oldest days of that journal (PostgreSQL). Wanted: <= 1 s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import psycopg
import pytest
from tests._services import temporary_database, temporary_postgres_database

import voxeldb
from benchmarks._report import print_report
from voxeldb import Database
from voxeldb.chunks import _journal, create_journal_partitions
from voxeldb.chunks._journal import EDIT, pack_edits
from voxeldb.terrain import generate_chunk

RESULTS: dict[str, float] = {}


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = float(stats.stats.median)


@contextlib.contextmanager
def _journal_off() -> Iterator[None]:
    _journal._ENABLED = False
    try:
        yield
    finally:
        _journal._ENABLED = True


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    for b in ("postgresql", "sqlite"):
        on, off = RESULTS.get(f"set_blocks_on_{b}"), RESULTS.get(f"set_blocks_off_{b}")
        if on and off:
            lines.append(
                f"[{b}] set_blocks with journal: {10_000 / on:,.0f} edits/s (want >= 150k); "
                f"on/off throughput {off / on:.2f} (want >= 0.7)"
            )
        made, undone = RESULTS.get(f"rollback_make_{b}"), RESULTS.get(f"rollback_{b}")
        if made and undone:
            lines.append(
                f"[{b}] rollback of 100k edits / set_blocks that made them: "
                f"{undone / made:.2f} (want <= 3; {made * 1000:.0f} ms vs {undone * 1000:.0f} ms)"
            )
    if "put_many_on" in RESULTS and "put_many_off" in RESULTS:
        lines.append(
            "put_many with journal / without, throughput (want >= 0.85): "
            f"{RESULTS['put_many_off'] / RESULTS['put_many_on']:.2f}"
        )
    if "watch_p50" in RESULTS:
        lines.append(
            f"watch latency p50 {RESULTS['watch_p50'] * 1000:.1f} ms (want <= 20), "
            f"p99 {RESULTS['watch_p99'] * 1000:.1f} ms (want <= 100)"
        )
    if "changes_area" in RESULTS:
        lines.append(
            f"changes(area 4x4, 1 hour) over {RESULTS['journal_entries']:,.0f} entries: "
            f"{RESULTS['changes_area'] * 1000:.1f} ms (want <= 50)"
        )
    if "prune" in RESULTS:
        lines.append(
            f"prune of 30 days ({RESULTS['pruned']:,.0f} entries): "
            f"{RESULTS['prune'] * 1000:.0f} ms (want <= 1000)"
        )
    print_report(request.config, "journal ratios", lines)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def jdb(request: pytest.FixtureRequest) -> Iterator[Database]:
    with temporary_database(str(request.param)) as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        yield db
        db.close()


def _edits(n: int, k: int, seed: int = 0) -> list[tuple[int, int, int, str]]:
    rng = np.random.default_rng(seed)
    cx, cz = rng.integers(0, k, n), rng.integers(0, k, n)
    xs = (cx * 16 + rng.integers(0, 16, n)).tolist()
    zs = (cz * 16 + rng.integers(0, 16, n)).tolist()
    ys = rng.integers(-64, 320, n).tolist()
    names = ["glass", "stone", "torch", "oak_planks"]
    return [(x, y, z, names[i % 4]) for i, (x, y, z) in enumerate(zip(xs, ys, zs, strict=True))]


# --- set_blocks -------------------------------------------------------------------------


def test_set_blocks_10k(benchmark: Any, jdb: Database, request: pytest.FixtureRequest) -> None:
    """Journal on (measured by pytest-benchmark), each round right after the same call with
    the journal off (timed in the setup): the two alternate, so load on the machine hits
    both alike."""
    benchmark.group = f"journal-set_blocks-{jdb.backend}"
    small = _disabled(request.config)
    n, k = (100, 4) if small else (10_000, 10)
    store = jdb.chunks(jdb.create_world(f"sb-{uuid.uuid4().hex[:8]}"), actor="bench")
    store.put_many((x, z, generate_chunk(x, z)) for x in range(k) for z in range(k))
    edits = _edits(n, k)
    off: list[float] = []

    def setup() -> None:
        head = store.head()
        with _journal_off():
            started = time.perf_counter()
            store.set_blocks(edits)
            off.append(time.perf_counter() - started)
        assert store.head() == head

    head = store.head()
    benchmark.pedantic(store.set_blocks, args=(edits,), setup=setup, rounds=1 if small else 9)
    assert store.head() > head
    _record(benchmark, f"set_blocks_on_{jdb.backend}")
    RESULTS[f"set_blocks_off_{jdb.backend}"] = statistics.median(off)


# --- put_many ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_db() -> Iterator[tuple[str, Database]]:
    with temporary_postgres_database() as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        yield url, db
        db.close()


def test_put_many(
    benchmark: Any, pg_db: tuple[str, Database], request: pytest.FixtureRequest
) -> None:
    """Journal on (measured), each round right after the same call with the journal off
    (timed in the setup), each into a new world: 1024 new terrain chunks."""
    _, db = pg_db
    benchmark.group = "journal-put_many"
    side = 4 if _disabled(request.config) else 32
    terrain = [(x, z, generate_chunk(x, z)) for x in range(side) for z in range(side)]
    stores = []
    off: list[float] = []

    def setup() -> None:
        baseline = db.chunks(db.create_world(f"pm-{uuid.uuid4().hex[:8]}"))
        with _journal_off():
            started = time.perf_counter()
            baseline.put_many(iter(terrain))
            off.append(time.perf_counter() - started)
        assert baseline.head() == 0
        stores.append(db.chunks(db.create_world(f"pm-{uuid.uuid4().hex[:8]}")))

    result = benchmark.pedantic(
        lambda: stores[-1].put_many(iter(terrain)),
        setup=setup,
        rounds=1 if _disabled(request.config) else 7,
        iterations=1,
    )
    assert result == len(terrain)
    assert stores[-1].head() == len(terrain)
    _record(benchmark, "put_many_on")
    RESULTS["put_many_off"] = statistics.median(off)


# --- watch latency (PostgreSQL) ---------------------------------------------------------


def _single_edits(url: str, world: str, count: int, start_at: float) -> list[float]:
    """Another process: ``count`` single edits; the wall time each one's commit returned."""
    committed = []
    with voxeldb.connect(url, cache="memory") as db:
        store = db.chunks(world, actor="writer")
        store.set_block(0, 0, 0, "stone")  # warm: states and connections
        time.sleep(max(0.0, start_at - time.time()))
        for i in range(count):
            store.set_block(i % 16, 1 + i // 16, 0, "stone")
            committed.append(time.time())
            time.sleep(0.01)
    return committed


def test_watch_latency(
    benchmark: Any, pg_db: tuple[str, Database], request: pytest.FixtureRequest
) -> None:
    url, db = pg_db
    benchmark.group = "journal-watch"
    count = 20 if _disabled(request.config) else 200
    world = db.create_world(f"watch-{uuid.uuid4().hex[:8]}")
    store = db.chunks(world)
    arrived: list[tuple[int, float]] = []

    def run() -> None:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            feed = store.watch(timeout=30)
            job = pool.submit(_single_edits, url, str(world), count, time.time() + 3)
            for change in feed:
                if change.actor == "writer" and change.blocks[0].y >= 1:
                    arrived.append((change.seq, time.time()))
                    if len(arrived) == count:
                        break
            feed.close()
            committed = job.result(timeout=60)
        delays = sorted(a[1] - c for a, c in zip(arrived, committed, strict=True))
        RESULTS["watch_p50"] = statistics.median(delays)
        RESULTS["watch_p99"] = delays[min(len(delays) - 1, int(len(delays) * 0.99))]

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert len(arrived) == count
    assert [s for s, _ in arrived] == sorted(s for s, _ in arrived)


# --- rollback ---------------------------------------------------------------------------


def test_rollback_100k_edits_of_one_actor(
    benchmark: Any, jdb: Database, request: pytest.FixtureRequest
) -> None:
    benchmark.group = f"journal-rollback-{jdb.backend}"
    small = _disabled(request.config)
    n, k = (1000, 4) if small else (100_000, 10)
    world = jdb.create_world(f"rb-{uuid.uuid4().hex[:8]}")
    base = jdb.chunks(world)
    base.put_many((x, z, generate_chunk(x, z)) for x in range(k) for z in range(k))
    agent = jdb.chunks(world, actor="agent:x")
    admin = jdb.chunks(world, actor="admin")
    edits = _edits(n, k, seed=1)
    made: list[float] = []

    def setup() -> None:
        started = time.perf_counter()
        agent.set_blocks(edits)
        made.append(time.perf_counter() - started)

    reports = []
    benchmark.pedantic(
        lambda: reports.append(admin.rollback(actor="agent:x")),
        setup=setup,
        rounds=1 if small else 3,
        iterations=1,
    )
    assert reports[0].blocks > 0 and reports[0].chunks == k * k
    _record(benchmark, f"rollback_{jdb.backend}")
    RESULTS[f"rollback_make_{jdb.backend}"] = statistics.median(made)


# --- changes and prune over a big journal (PostgreSQL) -----------------------------------


DAYS = 40


@pytest.fixture(scope="module")
def big_journal(
    pg_db: tuple[str, Database], request: pytest.FixtureRequest
) -> tuple[Database, uuid.UUID, int]:
    """10^6 entries (10^4 with --benchmark-disable) in 1,000 chunks over 40 days, by COPY."""
    url, db = pg_db
    entries = 10_000 if _disabled(request.config) else 1_000_000
    world = db.create_world(f"big-{uuid.uuid4().hex[:8]}")
    store = db.chunks(world)
    state = 1
    store.set_block(0, 0, 0, "stone")  # state 1 and the head row
    now = dt.datetime.now(dt.UTC)
    with db.engine.begin() as conn:
        create_journal_partitions(conn, days_back=DAYS + 1, days_ahead=1)
    rng = np.random.default_rng(2)
    cxs, czs = rng.integers(0, 40, entries), rng.integers(0, 25, entries)
    ages = np.sort(rng.uniform(0, DAYS * 86400, entries))[::-1]
    blob = pack_edits(np.array([5]), np.array([0]), np.array([state]))
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY world_journal (world_id, seq, logged_at, chunk_x, chunk_z, kind, version, "
                "actor, edits) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(
                ["uuid", "int8", "timestamptz", "int4", "int4", "int2", "int8", "text", "bytea"]
            )
            for i in range(entries):
                at = now - dt.timedelta(seconds=float(ages[i]))
                copy.write_row((world, i + 2, at, int(cxs[i]), int(czs[i]), EDIT, 1, "gen", blob))
        conn.execute(
            "UPDATE world_journal_heads SET seq = %s WHERE world_id = %s", (entries + 1, world)
        )
        conn.execute("ANALYZE world_journal")
    RESULTS["journal_entries"] = float(entries)
    return db, world, entries


def test_changes_area_hour(benchmark: Any, big_journal: tuple[Database, uuid.UUID, int]) -> None:
    db, world, _ = big_journal
    benchmark.group = "journal-changes"
    store = db.chunks(world)

    def run() -> int:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        return len(list(store.changes(area=(0, 0, 3, 3), start=start)))

    found = benchmark(run)
    assert found >= 0
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert all(
        0 <= c.cx <= 3 and 0 <= c.cz <= 3 and c.at >= start
        for c in store.changes(area=(0, 0, 3, 3), start=start)
    )
    _record(benchmark, "changes_area")


def test_prune_a_month(benchmark: Any, big_journal: tuple[Database, uuid.UUID, int]) -> None:
    db, world, entries = big_journal
    benchmark.group = "journal-prune"
    pruned: list[int] = []
    benchmark.pedantic(
        lambda: pruned.append(db.prune_journal(older_than=dt.timedelta(days=DAYS - 30))),
        rounds=1,
        iterations=1,
    )
    left = sum(1 for _ in db.chunks(world).changes())
    assert pruned[0] + left == entries + 1
    assert 0.6 * entries < pruned[0] < 0.9 * entries
    _record(benchmark, "prune")
    RESULTS["pruned"] = float(pruned[0])
