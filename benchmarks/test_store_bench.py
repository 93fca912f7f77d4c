"""ChunkStore throughput, each figure beside its baseline in the same run (``group=``).

Run: ``pytest benchmarks/test_store_bench.py --benchmark-only --benchmark-columns=median,ops``.
The ratios the project asks for are printed at the end of the run (the "store ratios"
section). With ``--benchmark-disable`` every benchmark runs once on small inputs, as a test.

- ``region-32x32``: a 32x32 region (1024 chunks) read cold (caches empty) and hot, beside a
  raw binary ``SELECT`` of the same rows plus ``decode_chunk`` of each.
  Wanted: cold <= 1.5x raw, hot >= 20x faster than cold.
- ``put_many``: 1024 generated chunks; beside encode-only, a raw binary COPY of the
  pre-encoded blobs, and the seed's way (one ORM-style INSERT per chunk of a JSON dict of
  block dicts, on a small sample, per chunk). Wanted: put_many >= 0.5x min(encode, COPY) and
  >= 100x the seed's way, per chunk.
- ``set_blocks``: 10,000 edits over 100 chunks in one call. Wanted: >= 100k edits/s.
- ``region-scale``: a cold 32x32 region with 10^3 vs 10^5 chunks stored (separate databases).
  Wanted: within 1.3x.
"""

from __future__ import annotations

import json
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
            f"[{backend}] region cold / raw select+decode (want <= 1.5)",
            f"region_cold_{backend}",
            f"region_raw_{backend}",
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
            "put_many throughput / min(encode-only, raw COPY) throughput (want >= 0.5): "
            f"{slower / RESULTS['put_many_insert']:.2f}"
        )
    if {"put_many_insert", "seed_way_per_chunk"} <= RESULTS.keys():
        lines.append(
            "put_many vs seed's way, per chunk (want >= 100): "
            f"{RESULTS['seed_way_per_chunk'] / (RESULTS['put_many_insert'] / RESULTS['put_many_chunks']):.0f}"
        )
    ratio("region with 10^5 stored / with 10^3 stored (want <= 1.3)", "region_big", "region_small")
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
    import sqlite3

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
