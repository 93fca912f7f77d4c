"""World import throughput, each beside its baseline in the same run.

Run: ``pytest benchmarks/test_import_bench.py --benchmark-only --benchmark-columns=median,ops -s``.
The ratios are printed at the end (the "import ratios" section). With ``--benchmark-disable``
each runs once on a small input, as a test.

- Anvil: ``voxeldb.ops.run_import`` of the vanilla sample (five region files, 2,223 chunks,
  471 of them full) into SQLite and PostgreSQL, beside reading and parsing the same region
  files alone (decompress + NBT parse with nbtlib, nothing stored, one process): once
  parsing every chunk, once parsing only the full ones (what the importer must parse).
  Wanted: import throughput >= 0.5x the read+parse throughput. The importer itself reads
  only the NBT tags it keeps (``ops/_import/_nbt``, a sixth of nbtlib's time), so the same
  read+parse with that reader is timed too: the strictest baseline; once on its own, and
  once before every round of each import (the machine's load drifts between the two).
- Luanti: the import of a world Debian's ``minetestserver`` generated (``tests/ops/_luanti``),
  beside reading and decompressing its MapBlocks alone (``SELECT`` + zstd, one process).
"""

from __future__ import annotations

import io
import itertools
import sqlite3
import statistics
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbtlib
import pytest
import zstandard
from tests._services import require_external, temporary_database
from tests.ops import _luanti

import voxeldb
from benchmarks._report import print_report
from voxeldb.ops import run_import
from voxeldb.ops._import._nbt import parse_block_entities, read_chunk

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "anvil-vanilla-sample"
RESULTS: dict[str, float] = {}
_names = itertools.count()


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = float(stats.stats.median)


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []

    def ratio(label: str, base: str, timed: str) -> None:
        if base in RESULTS and timed in RESULTS:
            lines.append(f"{label}: {RESULTS[base] / RESULTS[timed]:.2f}")

    for backend in ("sqlite", "postgresql"):
        for workers in ("2", "1"):
            timed = f"anvil_import_{backend}_{workers}"
            ratio(
                f"[{backend}, {workers} process(es)] Anvil import / read+parse of full chunks "
                "(want >= 0.5)",
                "anvil_parse_full",
                timed,
            )
            ratio(
                f"[{backend}, {workers} process(es)] Anvil import / read+parse of full chunks "
                "by the importer's own NBT reader (want >= 0.5)",
                "anvil_parse_full_own",
                timed,
            )
            ratio(
                f"[{backend}, {workers} process(es)] the same, read+parse timed just before "
                "each round of the import (want >= 0.5)",
                f"anvil_parse_full_own_{backend}_{workers}",
                timed,
            )
            ratio(
                f"[{backend}, {workers} process(es)] Anvil import / read+parse of every chunk",
                "anvil_parse_all",
                timed,
            )
            ratio(
                f"[{backend}, {workers} process(es)] Luanti import / read+decompress of MapBlocks",
                "luanti_read",
                f"luanti_import_{backend}_{workers}",
            )
    for name, seconds in sorted(RESULTS.items()):
        lines.append(f"{name}: {seconds * 1000:.0f} ms")
    print_report(request.config, "import ratios", lines)


# --- Anvil --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anvil_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_external(SAMPLE.is_dir(), f"the Anvil sample {SAMPLE}", "shared/ beside the clone")
    if not _disabled(request.config):
        return SAMPLE
    small = tmp_path_factory.mktemp("anvil")
    (small / "region").mkdir()
    (small / "region" / "r.-1.-1.mca").write_bytes((SAMPLE / "region" / "r.-1.-1.mca").read_bytes())
    return small


def _chunks(world: Path) -> Iterator[bytes]:
    """Every chunk of every region file, decompressed (all are zlib in the sample)."""
    for path in sorted((world / "region").glob("r.*.mca")):
        data = path.read_bytes()
        for i in range(1024):
            offset = int.from_bytes(data[4 * i : 4 * i + 3], "big") * 4096
            if offset:
                length = int.from_bytes(data[offset : offset + 4], "big")
                assert data[offset + 4] == 2
                yield zlib.decompress(data[offset + 5 : offset + 4 + length])


def _parse_all(world: Path) -> int:
    return sum(1 for raw in _chunks(world) if nbtlib.File.parse(io.BytesIO(raw)))


def _parse_full(world: Path) -> int:
    parsed = 0
    for raw in _chunks(world):
        if b"minecraft:full" in raw:
            root = nbtlib.File.parse(io.BytesIO(raw))
            parsed += root["Status"] == "minecraft:full"
    return parsed


def _parse_full_own(world: Path) -> int:
    """As :func:`_parse_full` with the reader the importer uses (``ops/_import/_nbt``): the
    bar's baseline at its strictest, the same parse the import does, nothing stored."""
    parsed = 0
    for raw in _chunks(world):
        if b"minecraft:full" in raw:
            root = read_chunk(raw)
            if root.block_entities is not None:
                parse_block_entities(root.block_entities)
            parsed += root.status == "minecraft:full"
    return parsed


@pytest.mark.benchmark(group="import-anvil")
def test_anvil_read_parse_full_own_reader(benchmark: Any, anvil_world: Path) -> None:
    assert benchmark.pedantic(_parse_full_own, args=(anvil_world,), rounds=3, iterations=1) > 0
    _record(benchmark, "anvil_parse_full_own")


@pytest.mark.benchmark(group="import-anvil")
def test_anvil_read_parse_all(benchmark: Any, anvil_world: Path) -> None:
    assert benchmark.pedantic(_parse_all, args=(anvil_world,), rounds=3, iterations=1) > 0
    _record(benchmark, "anvil_parse_all")


@pytest.mark.benchmark(group="import-anvil")
def test_anvil_read_parse_full(benchmark: Any, anvil_world: Path) -> None:
    assert benchmark.pedantic(_parse_full, args=(anvil_world,), rounds=3, iterations=1) > 0
    _record(benchmark, "anvil_parse_full")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, voxeldb.Database]]:
    with temporary_database(str(request.param)) as url:
        db = voxeldb.connect(url, cache="memory")
        db.create_schema()
        yield str(request.param), db
        db.close()


def _import(db: voxeldb.Database, source: str, world: Path, workers: int) -> int:
    report = run_import(db, source, world, f"bench-{next(_names)}", workers=workers)
    assert report.damaged == 0 and report.imported > 0
    return report.imported


@pytest.mark.benchmark(group="import-anvil")
@pytest.mark.parametrize("workers", [2, 1], ids=["2", "1"])
def test_anvil_import(
    benchmark: Any,
    anvil_world: Path,
    database: tuple[str, voxeldb.Database],
    workers: int,
) -> None:
    backend, db = database
    baseline: list[float] = []

    def setup() -> None:
        # The other jobs' load drifts over the minutes the benchmark runs: the baseline is
        # also timed beside each round, so that each ratio compares the same moments.
        started = time.perf_counter()
        _parse_full_own(anvil_world)
        baseline.append(time.perf_counter() - started)

    benchmark.pedantic(
        _import, args=(db, "anvil", anvil_world, workers), setup=setup, rounds=3, iterations=1
    )
    _record(benchmark, f"anvil_import_{backend}_{workers}")
    if getattr(benchmark, "stats", None) is not None:
        RESULTS[f"anvil_parse_full_own_{backend}_{workers}"] = statistics.median(baseline)


# --- Luanti -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def luanti_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world the real server generated: 256 x 256 nodes (64 x 64 with timing off)."""
    require_external(
        _luanti.available(),
        "Debian's minetest-server and minetest-data",
        "apt-get install minetest-server minetest-data; .ci/run does",
    )
    half = 32 if _disabled(request.config) else 128
    return _luanti.make_world(tmp_path_factory.mktemp("luanti"), half=half, dump=False)


def _read_mapblocks(world: Path) -> int:
    decompress = zstandard.ZstdDecompressor()
    count = 0
    with sqlite3.connect(f"file:{world / 'map.sqlite'}?mode=ro", uri=True) as conn:
        for (data,) in conn.execute("SELECT data FROM blocks"):
            assert data[0] == 29
            count += len(decompress.decompressobj().decompress(data[1:])) > 0
    return count


@pytest.mark.benchmark(group="import-luanti")
def test_luanti_read_decompress(benchmark: Any, luanti_world: Path) -> None:
    assert benchmark.pedantic(_read_mapblocks, args=(luanti_world,), rounds=3, iterations=1)
    _record(benchmark, "luanti_read")


@pytest.mark.benchmark(group="import-luanti")
@pytest.mark.parametrize("workers", [2, 1], ids=["2", "1"])
def test_luanti_import(
    benchmark: Any,
    luanti_world: Path,
    database: tuple[str, voxeldb.Database],
    workers: int,
) -> None:
    backend, db = database
    benchmark.pedantic(_import, args=(db, "luanti", luanti_world, workers), rounds=3, iterations=1)
    _record(benchmark, f"luanti_import_{backend}_{workers}")
