"""Issue 12, items 16-19: what a first-time user broke, run as the real program in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import voxeldb
from tests._services import temporary_database
from tests.cli.test_cli import assert_one_line_error, voxeldb_cmd
from voxeldb.meta import World, WorldChunk
from voxeldb.terrain import generate_chunk

# --- 16: malformed settings are one line naming the variable --------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "needles"),
    [
        ("VOXELDB_BCRYPT_ROUNDS", "abc", ("VOXELDB_BCRYPT_ROUNDS", "'abc'", "integer", "4", "31")),
        ("VOXELDB_BCRYPT_ROUNDS", "2", ("VOXELDB_BCRYPT_ROUNDS", "'2'", "4", "31")),
        (
            "VOXELDB_REDIS_MODE",
            "bogus",
            ("VOXELDB_REDIS_MODE", "'bogus'", "'encoded'", "'decoded'"),
        ),
        ("VOXELDB_ECHO_SQL", "perhaps", ("VOXELDB_ECHO_SQL", "true or false")),
    ],
)
def test_malformed_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, needles: tuple[str, ...]
) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    for args in (["health"], ["generate", "w", "-r", "0"]):
        proc = voxeldb_cmd(*args, url=url, extra_env={variable: value})
        assert_one_line_error(proc, *needles)
    assert not (tmp_path / "db.sqlite3").exists()


def test_http_redis_url_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "db.sqlite3").touch()
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    proc = voxeldb_cmd("--redis-url", "http://localhost:6379", "health", url=url)
    assert_one_line_error(proc, "Redis URL", "http://localhost:6379")


# --- 17: Ctrl-C during generate keeps what was written; a rerun resumes -----------------------


def _stored(url: str, world_name: str) -> dict[tuple[int, int], int]:
    """``(cx, cz) -> version`` of the chunks of ``world_name`` (empty when it does not exist)."""
    with voxeldb.connect(url, cache="memory") as db, db.session() as s:
        world_id = s.execute(select(World.id).where(World.name == world_name)).scalar()
        if world_id is None:
            return {}
        t = WorldChunk.__table__
        rows = s.execute(
            select(t.c.chunk_x, t.c.chunk_z, t.c.version).where(t.c.world_id == world_id)
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generate_interrupted_keeps_batches_and_resumes(backend: str) -> None:
    radius, side = 12, 25
    with temporary_database(backend) as url:
        assert voxeldb_cmd("setup", "--create-tables", url=url).returncode == 0
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DATABASE_URL=url, COLUMNS="200")
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxeldb", "generate", "Big", "-r", str(radius), "--seed", "3"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90
            while len(_stored(url, "Big")) == 0:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no chunk was committed in time"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, (proc.returncode, stdout, stderr)
        assert "Traceback" not in stderr
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        assert last.startswith("voxeldb: interrupted: "), stderr
        assert f"of {side * side:,} chunks" in last and "run the same command again" in last

        before = _stored(url, "Big")
        assert 0 < len(before) < side * side, len(before)
        stored_n = int(last.split("interrupted: ")[1].split(" of ")[0].replace(",", ""))
        assert stored_n == len(before)

        rerun = voxeldb_cmd("generate", "Big", "-r", str(radius), url=url)
        assert rerun.returncode == 0, rerun.stderr
        assert f"Wrote {side * side - len(before):,} chunks" in rerun.stdout
        assert f"{len(before):,} were stored already" in rerun.stdout
        after = _stored(url, "Big")
        assert len(after) == side * side
        # The chunks stored before the interruption were not written again.
        assert {k: after[k] for k in before} == before
        with voxeldb.connect(url, cache="memory") as db, db.session() as s:
            world_id = s.execute(select(World.id).where(World.name == "Big")).scalar_one()
            for cx, cz in ((-12, 12), (0, 0)):
                chunk = db.chunks(world_id).get(cx, cz)
                assert chunk is not None
                assert np.array_equal(chunk, generate_chunk(cx, cz, seed=3))


# --- 18: output paths, image formats, SQLite typos, world names -------------------------------


@pytest.fixture(scope="module")
def small_world() -> Iterator[str]:
    with temporary_database("sqlite") as url:
        proc = voxeldb_cmd("generate", "Valley", "-r", "1", url=url)
        assert proc.returncode == 0, proc.stderr
        yield url


def test_map_output_directory_gets_a_default_name(small_world: str, tmp_path: Path) -> None:
    target = tmp_path / "maps"
    target.mkdir()
    proc = voxeldb_cmd("map", "Valley", "-o", f"{target}{os.sep}", url=small_world)
    assert proc.returncode == 0, proc.stderr
    assert (target / "Valley.png").is_file()
    assert str(target / "Valley.png") in proc.stdout
    # An existing directory without the trailing slash is the same.
    (target / "Valley.png").unlink()
    proc = voxeldb_cmd("map", "Valley", "-o", str(target), url=small_world)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(target / "Valley.png").format == "PNG"
    # A directory that does not exist is refused, and not created as a file.
    missing = tmp_path / "nowhere"
    proc = voxeldb_cmd("map", "Valley", "-o", f"{missing}{os.sep}", url=small_world)
    assert_one_line_error(proc, "does not exist")
    assert not missing.exists()


def test_map_writes_the_format_its_extension_names(small_world: str, tmp_path: Path) -> None:
    for name, fmt in (("a.jpg", "JPEG"), ("b.JPEG", "JPEG"), ("c.webp", "WEBP"), ("d.png", "PNG")):
        proc = voxeldb_cmd("map", "Valley", "-o", str(tmp_path / name), url=small_world)
        assert proc.returncode == 0, (name, proc.stderr)
        assert Image.open(tmp_path / name).format == fmt, name
    for name in ("e.xyz", "noextension"):
        proc = voxeldb_cmd("map", "Valley", "-o", str(tmp_path / name), url=small_world)
        assert_one_line_error(proc, name, ".png", ".jpg")
        assert not (tmp_path / name).exists()


def test_a_typo_in_a_sqlite_url_creates_no_file(small_world: str, tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    url = f"sqlite:///{typo}"
    for args in (
        ["health"],
        ["map", "Valley", "-o", str(tmp_path / "m.png")],
        ["snapshot", "create", "Valley", "-o", str(tmp_path)],
        ["snapshot", "restore", str(tmp_path / "x.vxsnap")],
        ["migrate", "--from", url, "--to", small_world],
    ):
        proc = voxeldb_cmd(*args, url=url)
        assert_one_line_error(proc, str(typo), "does not exist")
        assert not typo.exists(), args
    # setup and generate may create a database.
    assert voxeldb_cmd("generate", "New", "-r", "0", url=url).returncode == 0
    assert typo.is_file()


def test_unknown_world_suggests_close_names(small_world: str, tmp_path: Path) -> None:
    proc = voxeldb_cmd("map", "valley", "-o", str(tmp_path / "v.png"), url=small_world)
    assert_one_line_error(proc, "no world named or with id 'valley'", "did you mean 'Valley'?")
    proc = voxeldb_cmd("snapshot", "create", "Valey", "-o", str(tmp_path), url=small_world)
    assert_one_line_error(proc, "'Valey'", "did you mean 'Valley'?")
    proc = voxeldb_cmd("map", "Atlantis", "-o", str(tmp_path / "v.png"), url=small_world)
    line = assert_one_line_error(proc, "'Atlantis'")
    assert "did you mean" not in line


# --- 19: flags are flags ----------------------------------------------------------------------


def _every_command() -> list[list[str]]:
    """``[]`` (the program), then the path of every command and group, sub-commands too."""
    import typer.main

    from voxeldb.cli import app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


_HELPS = _every_command()


def test_every_command_is_checked() -> None:
    names = {" ".join(c) for c in _HELPS}
    assert {"", "setup", "generate", "snapshot create", "snapshot restore", "migrate"} <= names
    assert {"health", "map"} <= names


@pytest.mark.parametrize("command", _HELPS, ids=lambda c: " ".join(c) or "voxeldb")
def test_help_shows_no_bool_values(command: list[str]) -> None:
    proc = voxeldb_cmd(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout, proc.stdout
    assert "--help" in proc.stdout


def test_map_grid_is_a_flag_pair_and_defaults_are_shown() -> None:
    help_text = voxeldb_cmd("map", "--help").stdout
    assert "--grid" in help_text and "--no-grid" in help_text
    assert "[default: no-grid]" in help_text
    setup_help = voxeldb_cmd("setup", "--help").stdout
    assert "[default: 16]" in setup_help


def test_version_and_help_take_no_value() -> None:
    assert_one_line_error(voxeldb_cmd("--version", "true"), "true")
    assert_one_line_error(voxeldb_cmd("--version", "health"), "--version")
    plain = voxeldb_cmd("--version")
    assert plain.returncode == 0 and plain.stdout.strip() == f"voxeldb {voxeldb.__version__}"


def test_map_grid_flag_pair_works(small_world: str, tmp_path: Path) -> None:
    with_grid = voxeldb_cmd(
        "map", "Valley", "-o", str(tmp_path / "g.png"), "--grid", "--no-legend", url=small_world
    )
    without = voxeldb_cmd(
        "map", "Valley", "-o", str(tmp_path / "n.png"), "--no-grid", "--no-legend", url=small_world
    )
    assert with_grid.returncode == 0 and without.returncode == 0, (with_grid.stderr, without.stderr)
    g = np.asarray(Image.open(tmp_path / "g.png").convert("RGB"))
    n = np.asarray(Image.open(tmp_path / "n.png").convert("RGB"))
    assert (g[:, 16] == 0).all() and not (n[:, 16] == 0).all()
    assert_one_line_error(
        voxeldb_cmd(
            "map", "Valley", "-o", str(tmp_path / "x.png"), "--grid", "true", url=small_world
        ),
        "true",
    )
