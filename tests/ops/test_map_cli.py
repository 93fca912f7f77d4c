"""``voxeldb map`` as a command: the SQLite file read directly and the store agree, chunks
without a summary are decoded (and stored with --rebuild-summaries), the unknown count is
said, and --colors / --no-legend reach the drawing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import voxeldb
from voxeldb.chunks import world_chunks_table
from voxeldb.ops import render_map, resolve_world


def voxeldb_map(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = url
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "voxeldb", "map", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_map_command(database_url: str, tmp_path: Path) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        world_id = db.create_world("isle", {"height": 32, "min_y": 0, "north": "+z"})
        store = db.chunks(world_id)
        store.set_blocks(
            [
                (x, 4, z, "default:sand" if x < 20 else "strange:rock")
                for x in range(32)
                for z in range(-16, 16)
            ]
        )
        with db.engine.begin() as conn:  # chunk (1, 0): as if written before summaries
            conn.execute(
                world_chunks_table.update()
                .where(world_chunks_table.c.chunk_x == 1, world_chunks_table.c.chunk_z == 0)
                .values(summary=None)
            )
        render_map(db, resolve_world(db, "isle"), tmp_path / "lib.png")

    done = voxeldb_map(database_url, "isle", "-o", str(tmp_path / "cmd.png"))
    assert done.returncode == 0, done.stderr
    assert "north +z at the top" in done.stdout
    assert "4 of 4 chunks present" in done.stdout
    assert "384 columns had a top block with no colour" in done.stdout  # 12 x 32 columns
    assert "strange:rock" in done.stdout
    assert "1 chunks had no current summary" in done.stdout
    library = np.asarray(Image.open(tmp_path / "lib.png"))
    command = np.asarray(Image.open(tmp_path / "cmd.png"))
    assert (library == command).all()

    colors = tmp_path / "colors.txt"
    colors.write_text("strange:rock 200 10 10\n")
    done = voxeldb_map(
        database_url, "isle", "-o", str(tmp_path / "c.png"), "--colors", str(colors),
        "--no-legend", "--rebuild-summaries",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 columns used a fallback colour" in done.stdout
    assert "their summaries are now stored (1)" in done.stdout
    image = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).astype(int)
    assert image.shape == (32, 32, 3)
    r, g, b = image[5, 25]
    assert r > 2 * g and r > 2 * b
    done = voxeldb_map(database_url, "isle", "-o", str(tmp_path / "d.png"))
    assert "no current summary" not in done.stdout

    bad = voxeldb_map(database_url, "isle", "-o", str(tmp_path / "e.png"), "--colors", "/nope")
    assert bad.returncode != 0 and "cannot read colours from /nope" in bad.stderr
    missing = voxeldb_map(database_url, "atlantis", "-o", str(tmp_path / "f.png"))
    assert missing.returncode != 0 and "atlantis" in missing.stderr
