"""``voxeldb map``, the whole command (a subprocess), beside its baseline in the same run.

Run: ``pytest benchmarks/test_map_bench.py --benchmark-only -s`` (``--benchmark-disable``:
each once, on small inputs, as a test). The "map ratios" section is printed at the end.

- Luanti: a world Debian's ``minetestserver`` generated (``tests/ops/_luanti``), imported
  into SQLite and cut to exactly 32 x 32 = 1,024 columns (MapBlock columns -16..15), mapped
  by ``voxeldb map`` and by Debian's ``minetestmapper`` (its sqlite3 backend, the same area:
  ``--geometry -256:-256+512+512``), alternately, ``ROUNDS`` times each; medians. Wanted:
  voxeldb / minetestmapper <= 1.5.
- 10^5 stored chunks (``put_many`` of a few distinct arrays, height 64) mapped by
  ``voxeldb map`` on SQLite and on PostgreSQL. Wanted: <= 10 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._services import temporary_database
from tests.ops import _luanti

import voxeldb
from voxeldb.ops import run_import
from voxeldb.terrain import generate_chunk

MINETESTMAPPER = shutil.which("minetestmapper") or "/usr/games/minetestmapper"
ROUNDS = 7
RESULTS: dict[str, float] = {}


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    lines = []
    if "mtm_1024" in RESULTS and "voxeldb_map_1024" in RESULTS:
        lines.append(
            "voxeldb map / minetestmapper, 1,024 Luanti columns, whole commands (want <= 1.5): "
            f"{RESULTS['voxeldb_map_1024'] / RESULTS['mtm_1024']:.2f}"
        )
    for name, seconds in sorted(RESULTS.items()):
        lines.append(f"{name}: {seconds * 1000:.0f} ms")
    if lines:
        print("\n---- map ratios ----\n" + "\n".join(lines))


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = url
    return env


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def test_map_1024_luanti_columns_vs_minetestmapper(
    tmp_path: Path, request: pytest.FixtureRequest, benchmark: Any
) -> None:
    if not _luanti.available() or not Path(MINETESTMAPPER).is_file():
        pytest.skip("needs Debian's minetest-server, minetest-data and minetestmapper")
    small = _disabled(request.config)
    half = 64 if small else 256
    world = _luanti.make_world(tmp_path, half=half, low=-32, high=95, dump=False)
    url = f"sqlite:///{tmp_path / 'voxeldb.sqlite3'}"
    side = 2 * half // 16
    with voxeldb.connect(url, cache="memory") as db:
        db.create_schema()
        world_id = run_import(db, "luanti", world, "luanti", workers=1).world_id
        store = db.chunks(world_id)
        lo, hi = -side // 2, side // 2 - 1
        bounds = (-10_000, -10_000, 10_000, 10_000)
        region_keys = [k for k in store.summaries(*bounds).keys]
        for cx, cz in region_keys:  # keep exactly the side x side columns of the area
            if not (lo <= cx <= hi and lo <= cz <= hi):
                store.delete(cx, cz)
        assert len(store.summaries(*bounds).keys) == side * side
    env = _env(url)
    ours = [sys.executable, "-m", "voxeldb", "map", "luanti", "-o", str(tmp_path / "v.png")]
    theirs = [
        MINETESTMAPPER, "-i", str(world), "-o", str(tmp_path / "m.png"),
        "--colors", "/usr/share/minetest/colors.txt",
        "--geometry", f"{-half}:{-half}+{2 * half}+{2 * half}",
    ]  # fmt: skip
    if not Path("/usr/share/minetest/colors.txt").is_file():
        theirs = theirs[:5] + theirs[7:]
    mine: list[float] = []
    base: list[float] = []
    for _ in range(1 if small else ROUNDS):  # alternately: both see the same machine
        base.append(_timed(theirs))
        mine.append(_timed(ours, env))
    RESULTS["mtm_1024" if not small else "mtm_small"] = statistics.median(base)
    RESULTS["voxeldb_map_1024" if not small else "voxeldb_map_small"] = statistics.median(mine)
    # pytest-benchmark's own table: one more run of the command.
    benchmark.pedantic(lambda: _timed(ours, env), rounds=1, iterations=1)
    from PIL import Image

    assert Image.open(tmp_path / "v.png").size[0] >= 2 * half
    assert Image.open(tmp_path / "m.png").size[0] >= 2 * half


def _few_arrays(height: int) -> list[np.ndarray]:
    return [generate_chunk(i, 3 * i, height=height, min_y=-16) for i in range(4)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_map_of_100k_chunks(backend: str, request: pytest.FixtureRequest, benchmark: Any) -> None:
    small = _disabled(request.config)
    nx, nz = (20, 10) if small else (320, 313)  # 100,160 chunks
    height = 64
    arrays = _few_arrays(height)
    with temporary_database(backend) as url:
        with voxeldb.connect(url, cache="memory") as db:
            db.create_schema()
            world_id = db.create_world("big", {"height": height, "min_y": -16})
            start = time.perf_counter()
            db.chunks(world_id).put_many(
                (x, z, arrays[(x * 7 + z) % len(arrays)]) for z in range(nz) for x in range(nx)
            )
            RESULTS[f"put_many_{nx * nz}_{backend}"] = time.perf_counter() - start
        out = Path(request.config.cache.mkdir("map-bench")) / f"big-{backend}.png"
        command = [sys.executable, "-m", "voxeldb", "map", "big", "-o", str(out)]
        seconds = benchmark.pedantic(lambda: _timed(command, _env(url)), rounds=1, iterations=1)
    RESULTS[f"voxeldb_map_{nx * nz}_chunks_{backend}"] = seconds
    if not small:
        assert seconds <= 10.0, f"voxeldb map of {nx * nz} chunks took {seconds:.1f} s"
