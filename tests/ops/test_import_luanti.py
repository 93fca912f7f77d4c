"""``voxeldb import luanti`` / ``import_world(db, "luanti", ...)`` against Debian's real server.

The world is made by ``minetestserver`` itself (``_luanti.make_world``), which also dumps what
``minetest.get_node`` says of every node of the area: the import is checked against that.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import select

import voxeldb
from tests._services import PG_ADMIN_DSN, require_external, temporary_postgres_database
from tests.ops import _luanti
from voxeldb.chunks import lookup_states, world_chunks_table
from voxeldb.ops import import_world, resolve_world, run_import


@pytest.fixture(autouse=True)
def _luanti_installed() -> None:
    require_external(
        _luanti.available(),
        "Debian's minetest-server and minetest-data",
        "apt-get install minetest-server minetest-data; .ci/run does",
    )


AREA = range(-2, 2)  # MapBlocks -2..1 in x and z: the dumped area, 64 x 64 nodes
COLUMNS = 25
"""Columns generated: the mapgen works in mapchunks of 5^3 MapBlocks (-2..2 around 0)."""


@pytest.fixture(scope="session")
def luanti_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world the real server generated (y -32 to 47), with its ``nodes.txt`` dump."""
    return _luanti.make_world(tmp_path_factory.mktemp("luanti"))


def copy_world(world: Path, target: Path) -> Path:
    shutil.copytree(world, target)
    return target


def dumped(world: Path, every: int = 1) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """``(x, y, z, state)`` as the server saw each node, in the importer's mapping."""
    with (world / "nodes.txt").open() as f:
        for i, line in enumerate(f):
            if i % every:
                continue
            x, y, z, name, param2 = line.split()
            if name == "air":
                state: dict[str, Any] = {"type": "air"}
            elif param2 == "0":
                state = {"type": name}
            else:
                state = {"type": name, "param2": int(param2)}
            yield int(x), int(y), int(z), state


def check_against_server(db: voxeldb.Database, world_id: Any, world: Path, every: int) -> int:
    store = db.chunks(world_id)
    arrays = store.region(AREA[0], AREA[0], AREA[-1], AREA[-1])
    assert len(arrays) == len(AREA) ** 2
    ids = {int(i) for a in arrays.values() for i in np.unique(a)}
    with db.engine.connect() as conn:
        states = lookup_states(conn, world_id, ids)
    checked = 0
    for x, y, z, expected in dumped(world, every):
        array = arrays[(x >> 4, z >> 4)]
        got = states[int(array[y - store.min_y, z & 15, x & 15])]
        assert got == expected, (x, y, z)
        checked += 1
    return checked


def chest_metadata(db: voxeldb.Database, world_id: Any) -> Any:
    wc = world_chunks_table
    with db.engine.connect() as conn:
        return conn.execute(
            select(wc.c.chunk_metadata).where(
                wc.c.world_id == world_id, wc.c.chunk_x == 0, wc.c.chunk_z == 0
            )
        ).scalar_one()


def test_map_sqlite_imports_as_the_server_sees_it(
    backend: str, database_url: str, luanti_world: Path
) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        report = run_import(db, "luanti", luanti_world, "luanti", workers=2)
        assert report.damaged == 0 and report.imported == COLUMNS
        assert report.not_generated > 0  # the neighbours the mapgen touched
        world = resolve_world(db, "luanti")
        assert world.settings["source"] == "luanti" and world.settings["north"] == "+z"
        assert world.min_y <= -32 and world.min_y + world.height >= 48
        assert world.min_y % 16 == 0 and world.height % 16 == 0
        # Every node of the area on SQLite; every 7th on PostgreSQL (same code, slower reads).
        checked = check_against_server(db, world.id, luanti_world, 1 if backend == "sqlite" else 7)
        assert checked >= 64 * 64 * 80 // 7
        metadata = chest_metadata(db, world.id)
    x, y, z = _luanti.CHEST
    assert metadata["source"] == "luanti"
    (chest,) = metadata["nodes"]
    assert (chest["x"], chest["y"], chest["z"]) == (x, y, z)
    assert chest["fields"]["infotext"] == "voxeldb test chest"
    items = chest["inventory"]["main"]["items"]
    assert items[:3] == ["default:dirt 5", "", "default:torch 2"] and len(items) == 32


def test_the_postgresql_map_backend(luanti_world: Path, tmp_path: Path) -> None:
    world = copy_world(luanti_world, tmp_path / "pgworld")
    with temporary_postgres_database() as url:
        conninfo = psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname=url.rsplit("/", 1)[1])
        _luanti.to_postgres(world, conninfo)
        assert (
            not (world / "map.sqlite").exists() or "postgresql" in (world / "world.mt").read_text()
        )
        target = f"sqlite:///{tmp_path}/voxeldb.sqlite3"
        with voxeldb.connect(target, cache="memory") as db:
            db.create_schema()
            report = run_import(db, "luanti", world, "from-pg")
            assert report.damaged == 0 and report.imported == COLUMNS
            check_against_server(db, report.world_id, world, 5)
            assert chest_metadata(db, report.world_id)["nodes"][0]["fields"]


def test_zlib_serialization_versions_25_and_28(luanti_world: Path, tmp_path: Path) -> None:
    world = copy_world(luanti_world, tmp_path / "old")
    counts = _luanti.downgrade(world / "map.sqlite")
    assert counts[25] > 50 and counts[28] > 50
    target = f"sqlite:///{tmp_path}/voxeldb.sqlite3"
    with voxeldb.connect(target, cache="memory") as db:
        db.create_schema()
        report = run_import(db, "luanti", world, "old", workers=1)
        assert report.damaged == 0 and report.imported == COLUMNS
        check_against_server(db, report.world_id, world, 3)


def corrupt_one_block(world: Path) -> tuple[int, int, int]:
    """Garble the middle of one generated MapBlock of column (0, 0); its position."""
    with sqlite3.connect(world / "map.sqlite") as conn:
        pos = 0 * 0x1000000 + 1 * 0x1000 + 0  # MapBlock (0, 1, 0)
        (data,) = conn.execute("SELECT data FROM blocks WHERE pos = ?", (pos,)).fetchone()
        bad = data[:20] + b"\x00" * 30 + data[50:]
        conn.execute("UPDATE blocks SET data = ? WHERE pos = ?", (bad, pos))
    return (0, 1, 0)


def test_a_damaged_mapblock_is_named_and_the_rest_imported(
    database_url: str, luanti_world: Path, tmp_path: Path
) -> None:
    world = copy_world(luanti_world, tmp_path / "bad")
    corrupt_one_block(world)
    with voxeldb.connect(database_url, cache="memory") as db:
        report = run_import(db, "luanti", world, "bad")
        assert report.damaged == 1 and report.imported == COLUMNS - 1
        assert "column (0, 0): MapBlock (0, 1, 0)" in report.messages[0]
        assert db.chunks(report.world_id).get(0, 0) is None
        assert db.chunks(report.world_id).get(1, 0) is not None


def test_resume_and_replace(database_url: str, luanti_world: Path) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        first = run_import(db, "luanti", luanti_world, "again")
        store = db.chunks(first.world_id)
        assert store.delete(-1, -1)
        store.set_block(8, 40, 8, "voxeldb:marker")
        second = run_import(db, "luanti", luanti_world, "again")
        assert (second.imported, second.kept) == (1, first.imported - 1)
        assert store.get_block(8, 40, 8) == {"type": "voxeldb:marker"}
        third = import_world(db, "luanti", luanti_world, "again", replace=True)
        assert third == first.world_id
        assert store.get_block(8, 40, 8) != {"type": "voxeldb:marker"}


def test_cli(database_url: str, luanti_world: Path, tmp_path: Path) -> None:
    world = copy_world(luanti_world, tmp_path / "cli")
    corrupt_one_block(world)
    args = ["--database-url", database_url, "import", "luanti", str(world), "--world", "lt"]
    done = subprocess.run(
        [sys.executable, "-m", "voxeldb", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Imported 24 chunks into new world 'lt'" in done.stdout
    assert "MapBlocks not generated (skipped)" in done.stdout
    assert "skipped damaged column (0, 0): MapBlock (0, 1, 0)" in done.stderr
    assert "Traceback" not in done.stderr
    (world / "world.mt").write_text("backend = leveldb\n")
    refused = subprocess.run(
        [sys.executable, "-m", "voxeldb", *args], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "leveldb" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_empty_map_is_refused(database_url: str, tmp_path: Path) -> None:
    world = tmp_path / "empty"
    world.mkdir()
    (world / "world.mt").write_text("gameid = minetest_game\nbackend = sqlite3\n")
    with sqlite3.connect(world / "map.sqlite") as conn:
        conn.execute("CREATE TABLE blocks (pos INT PRIMARY KEY, data BLOB)")
    with voxeldb.connect(database_url, cache="memory") as db:
        with pytest.raises(voxeldb.errors.ValidationError, match="holds no MapBlocks"):
            import_world(db, "luanti", world, "empty")
        (world / "map.sqlite").write_bytes(b"not a database" * 100)
        with pytest.raises(voxeldb.errors.ValidationError, match="cannot read the map"):
            import_world(db, "luanti", world, "empty")
