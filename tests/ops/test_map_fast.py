"""``voxeldb map`` without typer (``cli/_map_fast``) and the PNG writer (``ops/_map_png``).

The direct path must draw what the library draws and print what the typer command prints,
and hand everything it does not handle (help, other databases, mistakes in the arguments)
to the typer command untouched. PNG files must decode to exactly the pixels drawn.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import voxeldb
from tests._services import temporary_database
from voxeldb.cli._map_fast import _parse, fast_map
from voxeldb.ops import render_map, resolve_world
from voxeldb.ops._map_png import write_png


@pytest.fixture(scope="module")
def isle() -> Iterator[str]:
    """A SQLite database with world ``isle`` (north +z, one unknown block type)."""
    with temporary_database("sqlite") as url:
        with voxeldb.connect(url, cache="memory") as db:
            db.create_schema()
            world_id = db.create_world("isle", {"height": 32, "min_y": 0, "north": "+z"})
            db.chunks(world_id).set_blocks(
                [
                    (x, 4 + x // 8, z, "default:sand" if x < 20 else "strange:rock")
                    for x in range(32)
                    for z in range(-16, 16)
                ]
                + [(x, 9, 3, "default:water_source") for x in range(8)]
            )
        yield url


def test_parse_takes_the_common_forms_and_leaves_the_rest() -> None:
    args = _parse(["--database-url", "sqlite:///a.db", "map", "w", "-o", "m.png", "--grid"])
    assert args is not None
    assert (args.world, args.output, args.grid, args.legend) == ("w", "m.png", True, True)
    assert args.database_url == "sqlite:///a.db"
    args = _parse(
        ["map", "--output=m.png", "w", "--center", "-3", "4", "-r", "2", "--no-legend",
         "--colors", "c.txt", "--redis-url=memory", "--database-url=sqlite:///b.db"]
    )  # fmt: skip
    assert args is not None
    assert (args.center, args.radius, args.legend, args.colors) == ((-3, 4), 2, False, "c.txt")
    assert args.database_url == "sqlite:///b.db"
    for argv in (
        ["map", "w", "-o", "m.png", "--help"],
        ["map", "w", "-o", "m.png", "--rebuild-summaries"],
        ["map", "w", "-o", "m.png", "--grid", "true"],  # typer says "unexpected extra argument"
        ["map", "w", "-o", "m.png", "--radius", "513"],
        ["map", "w", "-o", "m.png", "--radius", "x"],
        ["map", "w", "-o", "m.png", "--center", "1"],
        ["map", "w", "-o"],
        ["map", "w"],
        ["map", "-o", "m.png"],
        ["map", "w", "-o", "m.png", "--", "x"],
        ["map", "w", "-om.png"],
        ["health"],
        [],
    ):
        assert _parse(argv) is None, argv


def test_fast_map_draws_and_says_what_the_library_and_the_command_do(
    isle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with voxeldb.connect(isle, cache="memory") as db:
        render_map(db, resolve_world(db, "isle"), tmp_path / "lib.png")
    assert fast_map(["--database-url", isle, "map", "isle", "-o", str(tmp_path / "f.png")]) == 0
    said = capsys.readouterr().out
    library = np.asarray(Image.open(tmp_path / "lib.png"))
    fast = np.asarray(Image.open(tmp_path / "f.png"))
    assert library.shape == fast.shape and (library == fast).all()

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["COLUMNS"] = "200"
    command = subprocess.run(
        [sys.executable, "-m", "voxeldb", "--database-url", isle, "map", "isle",
         "-o", str(tmp_path / "f.png")],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert said == command.stdout
    assert "384 columns had a top block with no colour" in said and "strange:rock" in said


def test_fast_map_leaves_what_it_cannot_do_to_typer(
    isle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "m.png")
    assert fast_map(["--database-url", isle, "map", "atlantis", "-o", out]) is None
    assert fast_map(["--database-url", isle + "x", "map", "isle", "-o", out]) is None
    assert fast_map(["--database-url", "postgresql://h/db", "map", "isle", "-o", out]) is None
    assert fast_map(["--database-url", isle, "map", "isle", "-o", out, "--help"]) is None
    assert not Path(out).exists() and not Path(isle[len("sqlite:///") :] + "x").exists()
    assert capsys.readouterr() == ("", "")


def test_fast_map_errors_are_one_line(
    isle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["--database-url", isle, "map", "isle", "-o", str(tmp_path / "m.xyz")]
    assert fast_map(bad) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("voxeldb: error: ") and ".png" in err[0]
    colors = ["--database-url", isle, "map", "isle", "-o", str(tmp_path / "m.png")]
    assert fast_map([*colors, "--colors", "/nope"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot read colours from /nope" in err[0]


def test_paths_with_brackets_are_printed_as_they_are(
    isle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rich read ``[bold]`` in a path as markup and printed the path without it."""
    folder = tmp_path / "[bold]"
    folder.mkdir()
    target = folder / "a[red]b.png"
    assert fast_map(["--database-url", isle, "map", "isle", "-o", str(target)]) == 0
    assert f"Wrote {target} (" in capsys.readouterr().out
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["COLUMNS"] = "400"
    typer_path = subprocess.run(  # --rebuild-summaries: always the typer command
        [sys.executable, "-m", "voxeldb", "--database-url", isle, "map", "isle", "-o",
         str(target), "--rebuild-summaries"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert f"Wrote {target} (" in typer_path.stdout


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (37, 53), (548, 512)])
def test_png_decodes_to_the_pixels_written(tmp_path: Path, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    rgb = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    rgb[: shape[0] // 2] = (40, 40, 46)  # runs, as maps have
    write_png(tmp_path / "p.png", rgb)
    image = Image.open(tmp_path / "p.png")
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (shape[1], shape[0]))
    assert (np.asarray(image) == rgb).all()
    data = (tmp_path / "p.png").read_bytes()
    assert zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")  # IHDR's CRC
