"""ChunkStore throughput, each figure beside its baseline in the same run (``group=``).

Run: ``pytest benchmarks/test_store_bench.py --benchmark-only --benchmark-columns=median,ops``.
The ratios the project asks for are printed at the end of the run (the "store ratios"
section). With ``--benchmark-disable`` every benchmark runs once on small inputs, as a test.

- ``region-32x32``: a 32x32 region (1024 chunks) read cold (caches empty) and hot, beside a
  raw binary ``SELECT`` of the same rows plus ``decode_chunk`` of each into fresh arrays.
  Wanted: cold <= 0.8x raw, hot >= 20x faster than cold.
- ``get-cold``: ``get`` of a chunk the caches do not hold, beside a raw binary primary-key
  ``SELECT`` of the same row plus ``decode_chunk``. Wanted: <= 1.3x.
- ``stream-walk``: a player walking 200 chunks along x, ``stream(x, 0, 8)`` at every step
  (PostgreSQL, caches empty at the start), beside raw binary ``SELECT``s of the same
  squares (plus ``decode_chunk`` of each chunk for the decoded stream). Wanted: encoded
  >= 1.0x and decoded >= 1.5x the raw throughput.
- ``strip-at-10^6``: a cold 1000x1 strip of a 1000x1000 world in a table of 1.2 * 10^6 rows
  (three worlds), beside its floor: a raw binary ``SELECT`` of those 1000 rows by primary
  key plus ``decode_chunk`` of each. Wanted: <= 1.2x.
- ``put_many``: 1024 generated chunks; beside encode-only, a raw binary COPY of the
  pre-encoded blobs, and the seed's way (one ORM-style INSERT per chunk of a JSON dict of
  block dicts, on a small sample, per chunk). Wanted: put_many >= 0.9x min(encode, COPY) and
  >= 100x the seed's way, per chunk.
- ``set_blocks``: 10,000 edits over 100 chunks in one call. Wanted: >= 100k edits/s.
- ``region-scale``: a cold 32x32 region with 10^3 vs 10^5 chunks stored (separate databases).
  Wanted: within 1.3x.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from tests._services import temporary_database, temporary_postgres_database

import voxeldb
from benchmarks._report import print_report
from voxeldb import ChunkStore, Database
from voxeldb.chunks import decode_chunk, encode_chunk
from voxeldb.terrain import TERRAIN_STATES, generate_chunk

RESULTS: dict[str, float] = {}
"""Median seconds per benchmark name, for the ratios printed at the end."""


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _side(config: pytest.Config) -> int:
    return 4 if _disabled(config) else 32


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = float(stats.stats.median)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    lines = []

    def ratio(label: str, num: str, den: str, scale: float = 1.0) -> None:
        if num in RESULTS and den in RESULTS:
            lines.append(f"{label}: {RESULTS[num] / RESULTS[den] * scale:.2f}")

    for backend in ("postgresql", "sqlite"):
        ratio(
            f"[{backend}] region cold / raw select+decode (want <= 0.8)",
            f"region_cold_{backend}",
            f"region_raw_{backend}",
        )
        ratio(
            f"[{backend}] get cold / raw primary-key select+decode (want <= 1.3)",
            f"get_cold_{backend}",
            f"get_raw_{backend}",
        )
        ratio(
            f"[{backend}] get cold / raw, run in pairs (want <= 1.3)",
            f"get_cold_{backend}",
            f"get_raw_pairs_{backend}",
        )
        ratio(
            f"[{backend}] region cold / hot (want >= 20)",
            f"region_cold_{backend}",
            f"region_hot_{backend}",
        )
        if f"set_blocks_{backend}" in RESULTS:
            lines.append(
                f"[{backend}] set_blocks edits/s (want >= 100000): "
                f"{RESULTS[f'set_blocks_edits_{backend}'] / RESULTS[f'set_blocks_{backend}']:.0f}"
            )
    if {"put_many_insert", "encode_only", "raw_copy"} <= RESULTS.keys():
        # Throughput ratio: the slower baseline's time over put_many's time.
        slower = max(RESULTS["encode_only"], RESULTS["raw_copy"])
        lines.append(
            "put_many throughput / min(encode-only, raw COPY) throughput (want >= 0.9, issue 9): "
            f"{slower / RESULTS['put_many_insert']:.2f}"
        )
    if {"put_many_insert", "seed_way_per_chunk"} <= RESULTS.keys():
        lines.append(
            "put_many vs seed's way, per chunk (want >= 100): "
            f"{RESULTS['seed_way_per_chunk'] / (RESULTS['put_many_insert'] / RESULTS['put_many_chunks']):.0f}"
        )
    ratio("region with 10^5 stored / with 10^3 stored (want <= 1.3)", "region_big", "region_small")
    # Throughput ratios: the baseline's time over the stream's.
    ratio(
        "walking stream(encoded) throughput / raw selects (want >= 1.0)",
        "walk_raw",
        "walk_encoded",
    )
    ratio(
        "walking stream(encoded) throughput / raw selects, run in pairs (want >= 1.0)",
        "walk_raw_pairs",
        "walk_encoded",
    )
    ratio(
        "walking stream throughput / raw selects+decode (want >= 1.5)",
        "walk_raw_decoded",
        "walk_decoded",
    )
    ratio("1000x1 strip at 10^6 rows / its floor (want <= 1.2)", "strip_region", "strip_floor")
    print_report(request.config, "store ratios", lines)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def terrain(request: pytest.FixtureRequest) -> list[tuple[int, int, np.ndarray[Any, Any]]]:
    side = _side(request.config)
    return [(x, z, generate_chunk(x, z)) for x in range(side) for z in range(side)]


@pytest.fixture(scope="module")
def encoded(terrain: list[tuple[int, int, np.ndarray[Any, Any]]]) -> list[bytes]:
    return [encode_chunk(a) for _, _, a in terrain]


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def filled(
    request: pytest.FixtureRequest, terrain: list[tuple[int, int, np.ndarray[Any, Any]]]
) -> Iterator[tuple[str, Database, ChunkStore]]:
    """A world holding the terrain region, on each backend, in-process cache only."""
    with temporary_database(str(request.param)) as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        store = db.chunks(db.create_world("region"))
        store.put_many(terrain)
        yield url, db, store
        db.close()


# --- region -----------------------------------------------------------------------------


def _raw_region(url: str, world: uuid.UUID, side: int) -> Callable[[], int]:
    if url.startswith("postgresql"):
        conn = psycopg.connect(_dsn(url), autocommit=True)

        def run() -> int:
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT chunk_x, chunk_z, version, data FROM world_chunks WHERE world_id = %s "
                    "AND chunk_x BETWEEN 0 AND %s AND chunk_z BETWEEN 0 AND %s",
                    (world, side - 1, side - 1),
                )
                return len([decode_chunk(row[3]) for row in cur.fetchall()])

        return run
    sconn = sqlite3.connect(url.removeprefix("sqlite:///"))

    def run_sqlite() -> int:
        rows = sconn.execute(
            "SELECT chunk_x, chunk_z, version, data FROM world_chunks WHERE world_id = ? "
            "AND chunk_x BETWEEN 0 AND ? AND chunk_z BETWEEN 0 AND ?",
            (world.hex, side - 1, side - 1),
        ).fetchall()
        return len([decode_chunk(row[3]) for row in rows])

    return run_sqlite


def test_region_raw_select_and_decode(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    url, _, store = filled
    side = _side(request.config)
    backend = store.backend
    benchmark.group = f"region-32x32-{backend}"
    assert benchmark(_raw_region(url, store.world_id, side)) == side * side
    _record(benchmark, f"region_raw_{backend}")


def test_region_cold(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    _, db, store = filled
    side = _side(request.config)
    benchmark.group = f"region-32x32-{store.backend}"
    result = benchmark.pedantic(
        lambda: len(store.region(0, 0, side - 1, side - 1)),
        setup=db.lru.clear,
        rounds=5 if not _disabled(request.config) else 1,
        iterations=1,
    )
    assert result == side * side
    _record(benchmark, f"region_cold_{store.backend}")


def test_region_hot(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    _, _, store = filled
    side = _side(request.config)
    benchmark.group = f"region-32x32-{store.backend}"
    store.region(0, 0, side - 1, side - 1)
    assert benchmark(lambda: len(store.region(0, 0, side - 1, side - 1))) == side * side
    _record(benchmark, f"region_hot_{store.backend}")


# --- get ----------------------------------------------------------------------------------


def _raw_get(url: str, world: uuid.UUID) -> Callable[[int, int], Any]:
    if url.startswith("postgresql"):
        conn = psycopg.connect(_dsn(url), autocommit=True)

        def run(x: int, z: int) -> Any:
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT version, data FROM world_chunks "
                    "WHERE world_id = %s AND chunk_x = %s AND chunk_z = %s",
                    (world, x, z),
                )
                ((_, data),) = cur.fetchall()
            return decode_chunk(data)

        return run
    sconn = sqlite3.connect(url.removeprefix("sqlite:///"))

    def run_sqlite(x: int, z: int) -> Any:
        ((_, data),) = sconn.execute(
            "SELECT version, data FROM world_chunks "
            "WHERE world_id = ? AND chunk_x = ? AND chunk_z = ?",
            (world.hex, x, z),
        ).fetchall()
        return decode_chunk(data)

    return run_sqlite


def _get_rounds(config: pytest.Config) -> dict[str, int]:
    if _disabled(config):
        return {"rounds": 3, "iterations": 1}
    return {"rounds": 1500, "iterations": 1, "warmup_rounds": 50}


def test_get_raw_select_and_decode(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    url, _, store = filled
    side = _side(request.config)
    benchmark.group = f"get-cold-{store.backend}"
    run = _raw_get(url, store.world_id)
    keys = itertools.cycle([(x, z) for x in range(side) for z in range(side)])
    got = benchmark.pedantic(lambda: run(*next(keys)), **_get_rounds(request.config))
    assert got.shape == (384, 16, 16)
    _record(benchmark, f"get_raw_{store.backend}")


def test_get_cold(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    """Each round's untimed setup also times the raw read of the same row, so the ratio is
    of pairs run back to back (load on a shared machine drifts between two tests)."""
    url, db, store = filled
    side = _side(request.config)
    benchmark.group = f"get-cold-{store.backend}"
    keys = itertools.cycle([(x, z) for x in range(side) for z in range(side)])
    raw = _raw_get(url, store.world_id)
    raw_times: list[float] = []

    def setup() -> tuple[tuple[int, int], dict[str, Any]]:
        key = next(keys)
        start = time.perf_counter()
        raw(*key)
        raw_times.append(time.perf_counter() - start)
        db.lru.clear()  # cold: not cached (its memory is kept for reuse, as in a full cache)
        return key, {}

    got = benchmark.pedantic(store.get, setup=setup, **_get_rounds(request.config))
    assert got is not None and got.shape == (384, 16, 16)
    _record(benchmark, f"get_cold_{store.backend}")
    if f"get_cold_{store.backend}" in RESULTS:
        RESULTS[f"get_raw_pairs_{store.backend}"] = statistics.median(raw_times)


# --- set_blocks -------------------------------------------------------------------------


def test_set_blocks_10k_edits_over_100_chunks(
    benchmark: Any, filled: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    _, _, store = filled
    benchmark.group = f"set_blocks-{store.backend}"
    n = 100 if _disabled(request.config) else 10_000
    k = 4 if _disabled(request.config) else 10  # k x k chunks: 100 when measuring
    rng = np.random.default_rng(0)
    cx = rng.integers(0, k, n)
    cz = rng.integers(0, k, n)
    xs = (cx * 16 + rng.integers(0, 16, n)).tolist()
    zs = (cz * 16 + rng.integers(0, 16, n)).tolist()
    ys = rng.integers(-64, 320, n).tolist()
    names = ["glass", "stone", "torch", "oak_planks"]
    edits = [(x, y, z, names[i % 4]) for i, (x, y, z) in enumerate(zip(xs, ys, zs, strict=True))]
    assert benchmark(store.set_blocks, edits) == n
    assert store.get_block(xs[-1], ys[-1], zs[-1]) is not None
    _record(benchmark, f"set_blocks_{store.backend}")
    RESULTS[f"set_blocks_edits_{store.backend}"] = float(n)


# --- put_many (PostgreSQL) --------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_db() -> Iterator[tuple[str, Database]]:
    with temporary_postgres_database() as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        yield url, db
        db.close()


def test_encode_only(benchmark: Any, terrain: list[tuple[int, int, np.ndarray[Any, Any]]]) -> None:
    benchmark.group = "put_many"
    out = benchmark(lambda: [encode_chunk(a) for _, _, a in terrain])
    assert len(out) == len(terrain)
    _record(benchmark, "encode_only")


def test_raw_copy_of_encoded_blobs(
    benchmark: Any,
    pg_db: tuple[str, Database],
    terrain: list[tuple[int, int, np.ndarray[Any, Any]]],
    encoded: list[bytes],
    request: pytest.FixtureRequest,
) -> None:
    url, db = pg_db
    benchmark.group = "put_many"
    conn = psycopg.connect(_dsn(url))
    worlds: list[uuid.UUID] = []

    def setup() -> None:
        worlds.append(db.create_world(f"copy-{uuid.uuid4().hex[:8]}"))

    def run() -> None:
        world = worlds[-1]
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY world_chunks (world_id, chunk_x, chunk_z, data, version) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "int4", "int4", "bytea", "int8"])
            for (x, z, _), data in zip(terrain, encoded, strict=True):
                copy.write_row((world, x, z, data, 1))
        conn.commit()

    benchmark.pedantic(run, setup=setup, rounds=1 if _disabled(request.config) else 5, iterations=1)
    assert len(db.chunks(worlds[-1]).region(0, 0, 40, 40)) == len(terrain)
    conn.close()
    _record(benchmark, "raw_copy")


def test_put_many_insert(
    benchmark: Any,
    pg_db: tuple[str, Database],
    terrain: list[tuple[int, int, np.ndarray[Any, Any]]],
    request: pytest.FixtureRequest,
) -> None:
    _, db = pg_db
    benchmark.group = "put_many"
    stores: list[ChunkStore] = []

    def setup() -> None:
        stores.append(db.chunks(db.create_world(f"put-{uuid.uuid4().hex[:8]}")))

    result = benchmark.pedantic(
        lambda: stores[-1].put_many(iter(terrain)),
        setup=setup,
        rounds=1 if _disabled(request.config) else 5,
        iterations=1,
    )
    assert result == len(terrain)
    _record(benchmark, "put_many_insert")
    RESULTS["put_many_chunks"] = float(len(terrain))


def test_put_many_replace(
    benchmark: Any,
    pg_db: tuple[str, Database],
    terrain: list[tuple[int, int, np.ndarray[Any, Any]]],
    request: pytest.FixtureRequest,
) -> None:
    _, db = pg_db
    benchmark.group = "put_many"
    store = db.chunks(db.create_world(f"replace-{uuid.uuid4().hex[:8]}"))
    store.put_many(terrain)
    result = benchmark.pedantic(
        lambda: store.put_many(iter(terrain)),
        rounds=1 if _disabled(request.config) else 5,
        iterations=1,
    )
    assert result == len(terrain)
    _record(benchmark, "put_many_replace")


_seed_table = Table(
    "seed_world_chunks",
    MetaData(),
    Column("world_id", Uuid(), primary_key=True),
    Column("chunk_x", Integer, primary_key=True),
    Column("chunk_z", Integer, primary_key=True),
    Column("block_data", JSON().with_variant(JSONB(), "postgresql")),
)


def test_seed_way_per_chunk(
    benchmark: Any,
    pg_db: tuple[str, Database],
    terrain: list[tuple[int, int, np.ndarray[Any, Any]]],
    request: pytest.FixtureRequest,
) -> None:
    """The seed's storage: a JSON dict of block dicts per chunk, one INSERT + commit per chunk.

    Run on a small sample; the median is per chunk, to compare with put_many per chunk.
    """
    _, db = pg_db
    benchmark.group = "put_many-seed-per-chunk"
    _seed_table.create(db.engine, checkfirst=True)
    sample = terrain[:1] if _disabled(request.config) else terrain[:3]
    world = uuid.uuid4()
    counter = iter(range(10**9))

    def one_chunk() -> None:
        i = next(counter)
        _, _, blocks = sample[i % len(sample)]
        ys, zs, xs = np.nonzero(blocks)
        block_data = {
            f"{x},{y - 64},{z}": {"type": TERRAIN_STATES[int(blocks[y, z, x])]}
            for x, y, z in zip(xs.tolist(), ys.tolist(), zs.tolist(), strict=True)
        }
        with Session(db.engine) as session:
            session.execute(
                _seed_table.insert().values(
                    world_id=world, chunk_x=i, chunk_z=0, block_data=block_data
                )
            )
            session.commit()

    benchmark.pedantic(one_chunk, rounds=len(sample), iterations=1)
    with db.engine.connect() as conn:
        stored = conn.execute(_seed_table.select().limit(1)).first()
    assert stored is not None and json.dumps(stored.block_data)
    _record(benchmark, "seed_way_per_chunk")


# --- region latency vs table size (PostgreSQL) -------------------------------------------


def _copy_world(url: str, world: uuid.UUID, rows: Iterator[tuple[int, int, bytes]]) -> None:
    with psycopg.connect(_dsn(url)) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY world_chunks (world_id, chunk_x, chunk_z, data, version) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "int4", "int4", "bytea", "int8"])
            for x, z, data in rows:
                copy.write_row((world, x, z, data, 1))
        conn.commit()
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE world_chunks")


@pytest.fixture(scope="module", params=["small", "big"])
def sized_world(
    request: pytest.FixtureRequest, encoded: list[bytes]
) -> Iterator[tuple[str, Database, ChunkStore]]:
    """10^3 chunks (the region alone) or 10^5 (a 316x316 world around it), own database.

    Both hold the same terrain blobs in the measured region; the rest of the big world
    cycles through a few distinct real blobs, all written by COPY in x-major order (as a
    generator sweeping the world would).
    """
    side = _side(request.config)
    total_side = (
        side if request.param == "small" else (316 if not _disabled(request.config) else 2 * side)
    )
    offset = (total_side - side) // 2
    region = {(offset + i // side, offset + i % side): blob for i, blob in enumerate(encoded)}
    filler = encoded[:8]
    with temporary_postgres_database() as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        world = db.create_world("sized")
        _copy_world(
            url,
            world,
            (
                (x, z, region.get((x, z), filler[(x * 7 + z) % len(filler)]))
                for x in range(total_side)
                for z in range(total_side)
            ),
        )
        store = db.chunks(world)
        store.offset = offset  # type: ignore[attr-defined]
        yield str(request.param), db, store
        db.close()


def test_region_latency_vs_table_size(
    benchmark: Any, sized_world: tuple[str, Database, ChunkStore], request: pytest.FixtureRequest
) -> None:
    size, db, store = sized_world
    side = _side(request.config)
    o = store.offset  # type: ignore[attr-defined]
    benchmark.group = "region-scale"
    result = benchmark.pedantic(
        lambda: len(store.region(o, o, o + side - 1, o + side - 1)),
        setup=db.lru.clear,
        rounds=1 if _disabled(request.config) else 7,
        iterations=1,
    )
    assert result == side * side
    _record(benchmark, f"region_{size}")


# --- a walking player's stream (PostgreSQL) -----------------------------------------------


def _walk(config: pytest.Config) -> tuple[int, int]:
    """Steps and radius."""
    return (5, 2) if _disabled(config) else (200, 8)


@pytest.fixture(scope="module")
def walk_world(
    request: pytest.FixtureRequest, encoded: list[bytes]
) -> Iterator[tuple[str, Database, ChunkStore]]:
    """Every chunk a player walking along x from (0, 0) sees: terrain blobs, by COPY."""
    steps, radius = _walk(request.config)
    with temporary_postgres_database() as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        world = db.create_world("walk")
        _copy_world(
            url,
            world,
            (
                (x, z, encoded[(x * 31 + z) % len(encoded)])
                for x in range(-radius, steps + radius + 1)
                for z in range(-radius, radius + 1)
            ),
        )
        yield url, db, db.chunks(world)
        db.close()


def _raw_walk(url: str, world: uuid.UUID, steps: int, radius: int, decode: bool) -> Any:
    conn = psycopg.connect(_dsn(url), autocommit=True)

    def run() -> int:
        count = 0
        for step in range(steps):
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT chunk_x, chunk_z, data FROM world_chunks WHERE world_id = %s "
                    "AND chunk_x = ANY(%s) AND chunk_z BETWEEN %s AND %s",
                    (world, list(range(step - radius, step + radius + 1)), -radius, radius),
                )
                rows = cur.fetchall()
            if decode:
                for row in rows:
                    decode_chunk(row[2])
            count += len(rows)
        return count

    return run


@pytest.mark.parametrize("decoded", [False, True], ids=["encoded", "decoded"])
def test_walk_raw_selects(
    benchmark: Any,
    walk_world: tuple[str, Database, ChunkStore],
    request: pytest.FixtureRequest,
    decoded: bool,
) -> None:
    url, _, store = walk_world
    steps, radius = _walk(request.config)
    benchmark.group = "stream-walk-" + ("decoded" if decoded else "encoded")
    run = _raw_walk(url, store.world_id, steps, radius, decoded)
    rounds = 1 if _disabled(request.config) else 3
    assert benchmark.pedantic(run, rounds=rounds, iterations=1) == steps * (2 * radius + 1) ** 2
    _record(benchmark, "walk_raw_decoded" if decoded else "walk_raw")


@pytest.mark.parametrize("decoded", [False, True], ids=["encoded", "decoded"])
def test_walk_stream(
    benchmark: Any,
    walk_world: tuple[str, Database, ChunkStore],
    request: pytest.FixtureRequest,
    decoded: bool,
) -> None:
    """The encoded walk's untimed setup also times the raw walk, for a ratio of pairs run
    back to back (as ``test_get_cold``)."""
    url, db, store = walk_world
    steps, radius = _walk(request.config)
    benchmark.group = "stream-walk-" + ("decoded" if decoded else "encoded")
    raw = _raw_walk(url, store.world_id, steps, radius, False)
    raw_times: list[float] = []

    def setup() -> None:
        if not decoded:
            start = time.perf_counter()
            raw()
            raw_times.append(time.perf_counter() - start)
        db.lru.clear()

    def walk() -> int:
        count = 0
        for step in range(steps):
            for _ in store.stream(step, 0, radius, encoded=not decoded):
                count += 1
        return count

    rounds = 1 if _disabled(request.config) else 5
    got = benchmark.pedantic(walk, setup=setup, rounds=rounds, iterations=1)
    assert got == steps * (2 * radius + 1) ** 2
    _record(benchmark, "walk_decoded" if decoded else "walk_encoded")
    if raw_times and "walk_encoded" in RESULTS:
        RESULTS["walk_raw_pairs"] = statistics.median(raw_times)


# --- a 1000x1 strip at 10^6 stored chunks (PostgreSQL) ------------------------------------


@pytest.fixture(scope="module")
def strip_world(
    request: pytest.FixtureRequest, encoded: list[bytes]
) -> Iterator[tuple[str, Database, ChunkStore, int]]:
    """A side x side world (10^6 chunks when measuring) and two others of a tenth of it each,
    written server-side from one repeated small blob; its row ``z = side // 2`` holds terrain
    blobs. Yields the world's side too."""
    side = 60 if _disabled(request.config) else 1000
    others = side * 316 // 1000
    row = side // 2
    filler = encode_chunk(np.zeros((384, 16, 16), np.uint16))
    with temporary_postgres_database() as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        world, *rest = (db.create_world(name) for name in ("strip", "east", "west"))
        with psycopg.connect(_dsn(url)) as conn:
            conn.execute("SET synchronous_commit = off")
            for wid, n in ((world, side), *((w, others) for w in rest)):
                conn.execute(
                    "INSERT INTO world_chunks (world_id, chunk_x, chunk_z, data, version) "
                    "SELECT %s, x, z, %s, 1 FROM generate_series(0, %s) x, "
                    "generate_series(0, %s) z WHERE %s <> %s OR z <> %s",
                    (wid, filler, n - 1, n - 1, wid, world, row),
                )
            conn.commit()
        _copy_world(url, world, ((x, row, encoded[x % len(encoded)]) for x in range(side)))
        store = db.chunks(world)
        yield url, db, store, side
        db.close()


def test_strip_floor(
    benchmark: Any,
    strip_world: tuple[str, Database, ChunkStore, int],
    request: pytest.FixtureRequest,
) -> None:
    url, _, store, side = strip_world
    benchmark.group = "strip-at-10^6"
    conn = psycopg.connect(_dsn(url), autocommit=True)
    xs = list(range(side))

    def run() -> int:
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT chunk_x, chunk_z, version, data FROM world_chunks "
                "WHERE world_id = %s AND chunk_x = ANY(%s) AND chunk_z = %s",
                (store.world_id, xs, side // 2),
            )
            return len([decode_chunk(row[3]) for row in cur.fetchall()])

    rounds = 1 if _disabled(request.config) else 7
    assert benchmark.pedantic(run, rounds=rounds, iterations=1) == side
    conn.close()
    _record(benchmark, "strip_floor")


def test_strip_region(
    benchmark: Any,
    strip_world: tuple[str, Database, ChunkStore, int],
    request: pytest.FixtureRequest,
) -> None:
    _, db, store, side = strip_world
    benchmark.group = "strip-at-10^6"
    rounds = 1 if _disabled(request.config) else 7
    got = benchmark.pedantic(
        lambda: len(store.region(0, side // 2, side - 1, side // 2)),
        setup=db.lru.clear,
        rounds=rounds,
        iterations=1,
    )
    assert got == side
    _record(benchmark, "strip_region")
