"""``voxeldb map``, the whole command (a subprocess), beside its baseline in the same run.

Run: ``pytest benchmarks/test_map_bench.py --benchmark-only -s`` (``--benchmark-disable``:
each once, on small inputs, as a test). The "map ratios" section is printed at the end.

- Luanti: a world Debian's ``minetestserver`` generated (``tests/ops/_luanti``), imported
  into SQLite and cut to exactly 32 x 32 = 1,024 columns (MapBlock columns -16..15), mapped
  by ``voxeldb map`` and by Debian's ``minetestmapper`` (its sqlite3 backend, the same area:
  ``--geometry -256:-256+512+512``), alternately, ``ROUNDS`` times each; medians. Wanted:
  voxeldb / minetestmapper <= 1.5.

  voxeldb runs as an installed package does, from compiled bytecode (pip writes it at
  install; minetestmapper is compiled too): the environment's ``PYTHONDONTWRITEBYTECODE``
  is dropped and the bytecode goes to a cache directory of the run's own
  (``PYTHONPYCACHEPREFIX``), filled by a first, untimed run. The same command compiling
  every module it imports on every run is reported beside it, as information.
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
from benchmarks._report import print_report
from voxeldb.ops import run_import
from voxeldb.terrain import generate_chunk

MINETESTMAPPER = shutil.which("minetestmapper") or "/usr/games/minetestmapper"
COLORS_TXT = Path("/usr/share/minetest/colors.txt")
ROUNDS = 7
RESULTS: dict[str, float] = {}


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    for size in ("1024", "small"):
        base, ours = RESULTS.get(f"mtm_{size}"), RESULTS.get(f"voxeldb_map_{size}")
        if base and ours:
            want = " (want <= 1.5)" if size == "1024" else ""
            lines.append(
                f"voxeldb map / minetestmapper, {size} Luanti columns, whole commands{want}: "
                f"{ours / base:.2f}"
            )
        compiling = RESULTS.get(f"voxeldb_map_{size}_compiling")
        if base and compiling:
            lines.append(
                f"  the same, compiling voxeldb's modules on every run (no bytecode cache): "
                f"{compiling / base:.2f}"
            )
    for name, seconds in sorted(RESULTS.items()):
        if name.startswith("voxeldb_map_100160_chunks_"):
            lines.append(f"{name} (want <= 10 s): {seconds:.2f} s")
    for name, seconds in sorted(RESULTS.items()):
        lines.append(f"{name}: {seconds * 1000:.0f} ms")
    print_report(request.config, "map ratios", lines)


def _env(url: str, pycache: Path | None = None) -> dict[str, str]:
    """The environment of a ``voxeldb`` run on ``url``; with ``pycache``, as installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = url
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
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
    installed = _env(url, tmp_path / "pycache")
    compiling = _env(url)
    ours = [sys.executable, "-m", "voxeldb", "map", "luanti", "-o", str(tmp_path / "v.png")]
    theirs = [
        MINETESTMAPPER, "-i", str(world), "-o", str(tmp_path / "m.png"),
        "--geometry", f"{-half}:{-half}+{2 * half}+{2 * half}",
    ]  # fmt: skip
    if COLORS_TXT.is_file():
        theirs += ["--colors", str(COLORS_TXT)]
    _timed(ours, installed)  # fills the bytecode cache
    mine: list[float] = []
    base: list[float] = []
    cold: list[float] = []
    for _ in range(1 if small else ROUNDS):  # alternately: all see the same machine
        base.append(_timed(theirs))
        mine.append(_timed(ours, installed))
        cold.append(_timed(ours, compiling))
    size = "small" if small else "1024"
    RESULTS[f"mtm_{size}"] = statistics.median(base)
    RESULTS[f"voxeldb_map_{size}"] = statistics.median(mine)
    RESULTS[f"voxeldb_map_{size}_compiling"] = statistics.median(cold)
    # pytest-benchmark's own table: one more run of the command.
    benchmark.pedantic(lambda: _timed(ours, installed), rounds=1, iterations=1)
    from PIL import Image

    assert Image.open(tmp_path / "v.png").size[0] >= 2 * half
    assert Image.open(tmp_path / "m.png").size[0] >= 2 * half


def _few_arrays(height: int) -> list[np.ndarray]:
    return [generate_chunk(i, 3 * i, height=height, min_y=-16) for i in range(4)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_map_of_100k_chunks(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, benchmark: Any
) -> None:
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
        command = [sys.executable, "-m", "voxeldb", "map", "big", "-o", str(tmp_path / "big.png")]
        env = _env(url, tmp_path / "pycache")
        _timed([*command, "--center", "0", "0", "-r", "0"], env)  # fills the bytecode cache
        seconds = benchmark.pedantic(lambda: _timed(command, env), rounds=1, iterations=1)
    RESULTS[f"voxeldb_map_{nx * nz}_chunks_{backend}"] = seconds
