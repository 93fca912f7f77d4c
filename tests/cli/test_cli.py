"""The real ``voxeldb`` command, run in a subprocess against real databases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, select

import voxeldb
from tests._services import REDIS_TEST_URL, free_port, temporary_database
from voxeldb.meta import (
    AIAgentActivity,
    Character,
    CharacterRelationship,
    InventoryItem,
    StoryChoice,
    User,
    World,
    WorldEvolutionLog,
)
from voxeldb.ops import BACKGROUND
from voxeldb.terrain import generate_chunk


def voxeldb_cmd(
    *args: str,
    url: str | None = None,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["VOXELDB_BCRYPT_ROUNDS"] = "4"  # the sample users' hashes; cost 12 is tested elsewhere
    env["COLUMNS"] = "200"
    if url is not None:
        env["DATABASE_URL"] = url
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "voxeldb", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("voxeldb: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_generate_map_and_snapshot_round_trip(database_url: str, tmp_path: Path) -> None:
    gen = voxeldb_cmd("generate", "valley", "--radius", "2", "--seed", "5", url=database_url)
    assert gen.returncode == 0, gen.stderr
    assert "Wrote 25 chunks" in gen.stdout and "chunks/s" in gen.stdout
    assert "Created world 'valley'" in gen.stderr

    with voxeldb.connect(database_url, cache="memory") as db:
        with db.session() as s:
            world = s.execute(select(World).where(World.name == "valley")).scalar_one()
            world_id, settings = world.id, dict(world.world_settings)
        assert settings["seed"] == 5 and settings["height"] == 384
        region = db.chunks(world_id).region(-3, -3, 3, 3)
        assert sorted(region) == [(x, z) for x in range(-2, 3) for z in range(-2, 3)]
        # A new world interns TERRAIN_STATES in order: the generator's ids are the world's.
        assert np.array_equal(region[(1, -2)], generate_chunk(1, -2, seed=5))

    # Generating again by id extends the same world and keeps its seed.
    again = voxeldb_cmd(
        "generate", str(world_id), "-r", "0", "--center", "3", "0", url=database_url
    )
    assert again.returncode == 0, again.stderr
    with voxeldb.connect(database_url, cache="memory") as db:
        assert np.array_equal(db.chunks(world_id).get(3, 0), generate_chunk(3, 0, seed=5))

    png = tmp_path / "valley.png"
    mapped = voxeldb_cmd(
        "map", "valley", "-o", str(png), "--radius", "3", "--no-legend", url=database_url
    )
    assert mapped.returncode == 0, mapped.stderr
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (7 * 16, 7 * 16, 3)
    assert tuple(image[0, 0]) == BACKGROUND  # chunk (-3, -3) is not stored
    stored = image[16:96, 16:96].reshape(-1, 3)
    assert not (stored == BACKGROUND).all(axis=1).any()
    assert len(np.unique(stored, axis=0)) > 20  # terrain colours with height shading

    # Without --center/--radius the frame is the stored chunks: x -2..3, z -2..2.
    whole = tmp_path / "whole.png"
    mapped = voxeldb_cmd("map", "valley", "-o", str(whole), "--no-legend", url=database_url)
    assert mapped.returncode == 0, mapped.stderr
    assert "26 of 30 chunks present" in mapped.stdout
    image = np.asarray(Image.open(whole).convert("RGB"))
    assert image.shape == (5 * 16, 6 * 16, 3)
    assert tuple(image[0, 5 * 16]) == BACKGROUND  # chunk (3, -2) is not stored
    assert not (image[:, : 5 * 16].reshape(-1, 3) == BACKGROUND).all(axis=1).any()

    snap = tmp_path / "valley.vxsnap"
    created = voxeldb_cmd("snapshot", "create", "valley", "-o", str(snap), url=database_url)
    assert created.returncode == 0, created.stderr
    assert snap.is_file() and "26 chunks" in created.stdout
    restored = voxeldb_cmd(
        "snapshot", "restore", str(snap), "--as-name", "valley2", "--new-id", url=database_url
    )
    assert restored.returncode == 0, restored.stderr
    assert "Restored world 'valley2'" in restored.stdout
    refused = voxeldb_cmd("snapshot", "restore", str(snap), url=database_url)
    assert_one_line_error(refused, "already exists")

    with voxeldb.connect(database_url, cache="memory") as db:
        with db.session() as s:
            copy_id = s.execute(select(World.id).where(World.name == "valley2")).scalar_one()
        t = voxeldb.meta.WorldChunk.__table__
        with db.engine.connect() as conn:

            def blobs(wid: uuid.UUID) -> dict[tuple[int, int], bytes]:
                rows = conn.execute(
                    select(t.c.chunk_x, t.c.chunk_z, t.c.data).where(t.c.world_id == wid)
                )
                return {(r[0], r[1]): bytes(r[2]) for r in rows}

            assert blobs(copy_id) == blobs(world_id)
            assert len(blobs(copy_id)) == 26


def test_setup_full_setup_twice(database_url: str) -> None:
    first = voxeldb_cmd("setup", "--full-setup", url=database_url)
    assert first.returncode == 0, first.stderr
    assert "Sample world 'Eldoria'" in first.stdout
    assert "wizard_adventurer: sample-" in first.stdout
    second = voxeldb_cmd("setup", "--full-setup", url=database_url)
    assert second.returncode == 0, second.stderr
    assert "exists already" in second.stdout and "skipped" in second.stdout

    with voxeldb.connect(database_url, cache="memory") as db:
        with db.session() as s:
            world = s.execute(select(World).where(World.name == "Eldoria")).scalar_one()

            def count(model: type, *where: object) -> int:
                q = select(func.count()).select_from(model)
                return int(s.execute(q.where(*where) if where else q).scalar_one())

            assert count(User) == 3
            assert count(Character, Character.world_id == world.id) == 4
            assert count(InventoryItem) >= 8
            assert count(CharacterRelationship) == 5
            assert count(StoryChoice) >= 3
            assert count(AIAgentActivity, AIAgentActivity.world_id == world.id) == 5
            assert count(WorldEvolutionLog, WorldEvolutionLog.world_id == world.id) == 5
            wid = world.id
        region = db.chunks(wid).region(-8, -8, 7, 7)
        assert len(region) == 256
        assert all(int(a.max()) > 0 for a in region.values())


def test_user_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    with temporary_database("sqlite") as url:
        assert voxeldb_cmd("setup", "--create-tables", url=url).returncode == 0
        assert_one_line_error(voxeldb_cmd("map", "atlantis", "-o", str(tmp_path / "a.png"), url=url),
                              "no world named or with id 'atlantis'")  # fmt: skip
        assert_one_line_error(voxeldb_cmd("setup", url=url), "exactly one of")
        assert_one_line_error(
            voxeldb_cmd("setup", "--create-tables", "--sample-data", url=url), "exactly one of"
        )
        assert_one_line_error(voxeldb_cmd("generate", "w", "--radius", "-1", url=url), "--radius")
        assert_one_line_error(
            voxeldb_cmd("snapshot", "restore", str(tmp_path / "none.vxsnap"), url=url),
            "does not exist",
        )
        corrupt = tmp_path / "corrupt.vxsnap"
        corrupt.write_bytes(b"PK\x03\x04" + os.urandom(200))
        assert_one_line_error(voxeldb_cmd("snapshot", "restore", str(corrupt), url=url),
                              "not a readable snapshot")  # fmt: skip
    assert_one_line_error(
        voxeldb_cmd("--database-url", "mysql://u@localhost/db", "health"), "unsupported database"
    )
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    assert_one_line_error(
        voxeldb_cmd("generate", "w", "-r", "1", url=dead), "cannot use the database"
    )


def test_health_reports_and_exit_status(database_url: str, backend: str) -> None:
    assert voxeldb_cmd("setup", "--create-tables", url=database_url).returncode == 0
    ok = voxeldb_cmd("health", "--json", "--redis-url", REDIS_TEST_URL, url=database_url)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["status"] in ("healthy", "degraded")
    db = report["database"]
    assert db["reachable"] and db["backend"] == backend
    assert db["schema_current"] and db["alembic_revision"] == db["alembic_head"]
    assert db["server_version"]
    assert "world_chunks" in {t["name"] for t in db["tables"]}
    assert "status" in db["pool"]
    assert report["cache"]["redis_reachable"] is True
    assert report["cache"]["maxmemory_policy"]

    down = voxeldb_cmd(
        "health", "--json", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", url=database_url
    )
    assert down.returncode == 0, down.stderr
    degraded = json.loads(down.stdout)
    assert degraded["status"] == "degraded"
    assert degraded["cache"]["redis_reachable"] is False
    strict = voxeldb_cmd(
        "health", "--strict", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", url=database_url
    )
    assert strict.returncode == 1 and "DEGRADED" in strict.stdout


def test_health_of_an_unreachable_or_empty_database_exits_1(tmp_path: Path) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    proc = voxeldb_cmd("health", "--json", url=dead)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["status"] == "unhealthy" and not report["database"]["reachable"]
    # The driver's message, not SQLAlchemy's wrapper with its "Background on this error" link.
    assert "Connection refused" in report["database"]["error"]
    assert "sqlalche.me" not in report["database"]["error"]
    (tmp_path / "empty.sqlite3").touch()  # an empty file is an empty SQLite database
    empty = voxeldb_cmd("health", url=f"sqlite:///{tmp_path}/empty.sqlite3")
    assert empty.returncode == 1
    assert "UNHEALTHY" in empty.stdout and "schema is missing" in empty.stdout
    # A pool line a person can read: no "Current Overflow: -4".
    pool_line = next(line for line in empty.stdout.splitlines() if line.strip().startswith("pool"))
    assert "in use" in pool_line and "Overflow: -" not in pool_line


def test_help_everywhere_and_console_script() -> None:
    from voxeldb.cli import run

    for args in (
        ["--help"],
        ["setup", "--help"],
        ["generate", "--help"],
        ["snapshot", "--help"],
        ["snapshot", "create", "--help"],
        ["snapshot", "restore", "--help"],
        ["migrate", "--help"],
        ["health", "--help"],
        ["map", "--help"],
    ):
        assert run(args) == 0, args
    script = shutil.which("voxeldb", path=str(Path(sys.executable).parent)) or shutil.which(
        "voxeldb"
    )
    assert script is not None, "the voxeldb console script is not installed"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("setup", "generate", "snapshot", "migrate", "health", "map"):
        assert command in proc.stdout
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"voxeldb {voxeldb.__version__}"
