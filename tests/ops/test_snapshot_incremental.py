"""Incremental snapshots: a full snapshot plus increments (``--since SEQ``) restore the world as
it is, on either backend; an increment that does not continue what the target holds is refused."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

import voxeldb
from tests._services import temporary_database
from tests.cli.test_cli import assert_one_line_error, voxeldb_cmd
from voxeldb import Database
from voxeldb.errors import SnapshotError
from voxeldb.meta import WorldChunk
from voxeldb.ops import DatabaseSetup, read_manifest

SETTINGS = {"height": 32, "min_y": 0}


def _other(backend: str) -> str:
    return "postgresql" if backend == "sqlite" else "sqlite"


def _new_world(db: Database, name: str) -> uuid.UUID:
    """A world whose registry holds ids 1 and 2 (what :func:`_terrain` uses)."""
    db.create_schema()
    wid = db.create_world(name, dict(SETTINGS))
    db.chunks(wid, actor="setup").set_blocks([(0, 0, 0, "stone"), (0, 1, 0, "dirt")])
    return wid


def _terrain(seed: int) -> np.ndarray:
    rng = np.random.default_rng(abs(seed))
    blocks = np.zeros((32, 16, 16), dtype=np.uint16)
    blocks[:8] = 1
    blocks[8:10] = rng.integers(1, 3, size=(2, 16, 16))
    return blocks


def world_state(db: Database, world_id: uuid.UUID) -> dict[tuple[int, int], Any]:
    """Every stored chunk as its blocks in dict form per distinct id (ids may differ)."""
    store = db.chunks(world_id)
    region = store.region(-50, -50, 50, 50)
    out: dict[tuple[int, int], Any] = {}
    for (cx, cz), blocks in sorted(region.items()):
        out[(cx, cz)] = blocks.tolist()
    return out


def stored_bytes(db: Database, world_id: uuid.UUID) -> dict[tuple[int, int], bytes]:
    with db.session() as s:
        rows = s.execute(
            select(WorldChunk.chunk_x, WorldChunk.chunk_z, WorldChunk.data).where(
                WorldChunk.world_id == world_id
            )
        ).all()
    return {(x, z): bytes(d) for x, z, d in rows}


@pytest.fixture
def target_url(backend: str) -> Iterator[str]:
    with temporary_database(_other(backend)) as url:
        yield url


def test_full_plus_increments_restore_the_world_on_the_other_backend(
    database_url: str, target_url: str, tmp_path: Path
) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _new_world(db, "Inc")
        store = db.chunks(wid, actor="gen")
        store.put_many((x, z, _terrain(x * 10 + z)) for x in range(-2, 2) for z in range(-2, 2))
        store.set_blocks([(1, 20, 1, "stone"), (-5, 20, 7, {"type": "oak_log", "axis": "x"})])

    with DatabaseSetup(database_url, cache="memory") as src:
        full = src.snapshot_info(wid, tmp_path / "full.vxsnap")
        assert full.since is None and full.journal_head is not None and full.journal_head > 0
        assert read_manifest(full.path)["journal"] == {"head": full.journal_head}
        h0 = full.journal_head

        with voxeldb.connect(database_url, cache="memory") as db:
            store = db.chunks(wid, actor="player")
            store.set_blocks([(2, 21, 2, "diamond_ore"), (20, 21, 2, "gold_ore")])  # new states
            store.put(5, 5, _terrain(99))  # a new chunk
            assert store.delete(-2, -2)
            store.put(-2, -2, _terrain(7))  # deleted, then back
            assert store.delete(1, 1)  # deleted for good
        inc1 = src.snapshot_info(wid, tmp_path, since=h0)
        assert inc1.since == h0 and inc1.journal_head is not None and inc1.journal_head > h0
        assert inc1.path.name.startswith("Inc-") and f"-since{h0}" in inc1.path.name
        assert inc1.counts["world_chunks"] == 4  # (0, 0), (1, 0), (5, 5), (-2, -2)
        assert inc1.counts["deleted_chunks"] == 1  # (1, 1)
        manifest = read_manifest(inc1.path)
        assert manifest["format"] == "voxeldb-world-increment"
        assert manifest["increment"] == {"since": h0, "head": inc1.journal_head}

        with voxeldb.connect(database_url, cache="memory") as db:
            store = db.chunks(wid, actor="player")
            store.set_block(100, 3, 100, "emerald_block")  # creates chunk (6, 6)
            assert store.delete(5, 5)
            store.set_block(2, 21, 2, "air")
        inc2 = src.snapshot_info(wid, tmp_path / "inc2.vxsnap", since=inc1.journal_head)
        assert inc2.counts["world_chunks"] == 2 and inc2.counts["deleted_chunks"] == 1
        empty = src.snapshot_info(wid, tmp_path / "empty.vxsnap", since=inc2.journal_head)
        assert empty.counts["world_chunks"] == 0 and empty.counts["deleted_chunks"] == 0
        assert empty.journal_head == inc2.journal_head

        with pytest.raises(SnapshotError, match="past the world's journal head"):
            src.snapshot_info(wid, tmp_path / "x.vxsnap", since=inc2.journal_head + 1)

    with voxeldb.connect(database_url, cache="memory") as db:
        expected = world_state(db, wid)
        expected_bytes = stored_bytes(db, wid)
        expected_states = {
            k: db.chunks(wid).get_block(*k)
            for k in [(1, 20, 1), (-5, 20, 7), (2, 21, 2), (20, 21, 2), (100, 3, 100)]
        }

    with DatabaseSetup(target_url, cache="memory") as dst:
        assert dst.restore_world_snapshot(full.path) == wid
        # Out of order: inc2 does not continue the full snapshot (inc1 is missing).
        with pytest.raises(SnapshotError, match=f"apply the increment.*{h0 + 1} to"):
            dst.restore_world_snapshot(inc2.path)
        assert dst.restore_world_snapshot(inc1.path) == wid
        # Going back: inc1 is already held, and inc1 again changes nothing wrong.
        assert dst.restore_world_snapshot(inc1.path) == wid
        assert dst.restore_world_snapshot(inc2.path) == wid
        with pytest.raises(SnapshotError, match="go back"):
            dst.restore_world_snapshot(inc1.path)
        assert dst.restore_world_snapshot(empty.path) == wid

    with voxeldb.connect(target_url, cache="memory") as db:
        assert world_state(db, wid) == expected
        assert stored_bytes(db, wid) == expected_bytes
        for key, state in expected_states.items():
            assert db.chunks(wid).get_block(*key) == state
        # The restores are journaled on the target.
        assert db.chunks(wid).head() > 0


def test_an_increment_on_the_wrong_base_is_refused(database_url: str, tmp_path: Path) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _new_world(db, "Base")
        db.chunks(wid).put_many((x, 0, _terrain(x)) for x in range(3))
    with DatabaseSetup(database_url, cache="memory") as src:
        full = src.snapshot_info(wid, tmp_path / "full.vxsnap")
        with voxeldb.connect(database_url, cache="memory") as db:
            db.chunks(wid).set_block(1, 9, 1, "glass")
        inc = src.snapshot_info(wid, tmp_path / "inc.vxsnap", since=full.journal_head)
        # After a prune the changes right after `since` are gone: no increment from there.
        with voxeldb.connect(database_url, cache="memory") as db:
            db.chunks(wid).set_block(2, 9, 2, "glass")
            assert db.prune_journal(older_than=dt.timedelta(0), world_id=wid) > 0
        with pytest.raises(SnapshotError, match="pruned"):
            src.snapshot_info(wid, tmp_path / "late.vxsnap", since=inc.journal_head)

    with temporary_database("sqlite") as url, DatabaseSetup(url, cache="memory") as dst:
        dst.create_tables()
        # No full restore first.
        with pytest.raises(SnapshotError, match="restore the full snapshot first"):
            dst.restore_world_snapshot(inc.path)
        with pytest.raises(SnapshotError, match="increment"):
            dst.restore_world_snapshot(inc.path, new_id=True)
        # A world of that name that was not restored from this world.
        with voxeldb.connect(url, cache="memory") as db:
            db.create_world("Lookalike", dict(SETTINGS))
        with pytest.raises(SnapshotError, match="was not restored from a snapshot of world 'Base'"):
            dst.restore_world_snapshot(inc.path, name="Lookalike")
        # A copy restored under another name takes the increment by name.
        copy = dst.restore_world_snapshot(full.path, new_id=True, name="Copy")
        assert dst.restore_world_snapshot(inc.path, name="Copy") == copy
        # Written on the target after its restore: refused, and nothing changes.
        dst.restore_world_snapshot(full.path)
        with voxeldb.connect(url, cache="memory") as db:
            db.chunks(wid).set_block(0, 9, 0, "dirt")
            before = world_state(db, wid)
        with pytest.raises(SnapshotError, match="written on the target after its last restore"):
            dst.restore_world_snapshot(inc.path)
        with voxeldb.connect(url, cache="memory") as db:
            assert world_state(db, wid) == before
            assert db.chunks(copy).get_block(1, 9, 1) == {"type": "glass"}


def test_snapshot_command_writes_and_applies_increments(
    database_url: str, target_url: str, tmp_path: Path
) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _new_world(db, "Cli")
        db.chunks(wid).put_many((x, 0, _terrain(x)) for x in range(4))
    full = voxeldb_cmd("snapshot", "create", "Cli", "-o", str(tmp_path / "full.vxsnap"),
                       url=database_url)  # fmt: skip
    assert full.returncode == 0, full.stderr
    match = re.search(r"journal head (\d+)", full.stdout)
    assert match is not None, full.stdout
    head = int(match.group(1))
    with voxeldb.connect(database_url, cache="memory") as db:
        db.chunks(wid).set_block(17, 3, 1, "stone")
        db.chunks(wid).delete(3, 0)
    inc = voxeldb_cmd("snapshot", "create", "Cli", "--since", str(head), "-o",
                      str(tmp_path / "inc.vxsnap"), url=database_url)  # fmt: skip
    assert inc.returncode == 0, inc.stderr
    assert "increment of world 'Cli'" in inc.stdout and "1 chunks changed, 1 deleted" in inc.stdout
    assert_one_line_error(
        voxeldb_cmd(
            "snapshot",
            "create",
            "Cli",
            "--since",
            "999999",
            "-o",
            str(tmp_path / "x.vxsnap"),
            url=database_url,
        ),
        "past the world's journal head",
    )

    assert voxeldb_cmd("setup", "--create-tables", url=target_url).returncode == 0
    early = voxeldb_cmd("snapshot", "restore", str(tmp_path / "inc.vxsnap"), url=target_url)
    assert_one_line_error(early, "restore the full snapshot first")
    for name in ("full.vxsnap", "inc.vxsnap"):
        proc = voxeldb_cmd("snapshot", "restore", str(tmp_path / name), url=target_url)
        assert proc.returncode == 0, proc.stderr
    assert "Applied increment" in proc.stdout and "1 deleted" in proc.stdout
    with (
        voxeldb.connect(database_url, cache="memory") as src,
        voxeldb.connect(target_url, cache="memory") as dst,
    ):
        assert world_state(dst, wid) == world_state(src, wid)
        assert stored_bytes(dst, wid) == stored_bytes(src, wid)
