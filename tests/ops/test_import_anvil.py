"""``voxeldb import anvil`` / ``import_world(db, "anvil", ...)`` on the real vanilla sample.

The imported blocks are checked against a second reader written for the tests (``_mca``:
``struct`` only), block by block, on both backends.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import null, select

import voxeldb
from tests._services import require_external
from tests.ops import _mca
from voxeldb.chunks import lookup_states, world_chunks_table
from voxeldb.ops import ImportReport, import_world, resolve_world, run_import

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "anvil-vanilla-sample"
SMALL_REGION = "r.-1.-1.mca"  # 321 chunks, 35 of them full; chunk (-1, -9) has 3 chests
CHECKED = [(-1, -9), (-1, -3), (-1, 19), (29, 33), (61, 35), (68, 34), (19, 32)]
"""Chests, the largest palette of each region file, a small one."""


@pytest.fixture(autouse=True)
def _sample_present() -> None:
    require_external(SAMPLE.is_dir(), f"the Anvil sample {SAMPLE}", "shared/ beside the clone")


class Watcher:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.messages: list[str] = []

    def started(self, total: int, unit: str) -> None:
        self.total = total

    def advanced(self, n: int) -> None:
        self.done += n

    def damaged(self, message: str) -> None:
        self.messages.append(message)


def small_world(tmp_path: Path) -> Path:
    world = tmp_path / "mcworld"
    (world / "region").mkdir(parents=True)
    shutil.copy(SAMPLE / "region" / SMALL_REGION, world / "region" / SMALL_REGION)
    return world


def full_chunks(region: Path) -> dict[tuple[int, int], Any]:
    out = {}
    for key, (kind, payload) in _mca.read_region(region).items():
        assert kind == 2
        nbt = _mca.parse_nbt(zlib.decompress(payload))
        if nbt["Status"] == "minecraft:full":
            out[key] = nbt
    return out


def check_chunk(db: voxeldb.Database, world_id: Any, nbt: Any) -> None:
    """Every block of chunk ``nbt`` as the importer stored it, against ``_mca``'s reading."""
    store = db.chunks(world_id)
    cx, cz = nbt["xPos"], nbt["zPos"]
    array = store.get(cx, cz)
    assert array is not None, (cx, cz)
    with db.engine.connect() as conn:
        states = lookup_states(conn, world_id, {int(i) for i in array.reshape(-1)})
    for ly in range(store.height):
        y = ly + store.min_y
        for z in range(16):
            for x in range(16):
                expected = _mca.blocks_of(nbt, x, y, z)
                got = states[int(array[ly, z, x])]
                assert got == expected, ((cx, cz), (x, y, z))


def test_sample_imports_block_for_block(backend: str, database_url: str) -> None:
    watcher = Watcher()
    with voxeldb.connect(database_url, cache="memory") as db:
        # Two parser processes, whatever the machine's load (the default may choose one).
        report = run_import(db, "anvil", SAMPLE, "vanilla", progress=watcher, workers=2)
        assert isinstance(report, ImportReport)
        assert (report.imported, report.not_full, report.damaged) == (471, 1752, 0)
        assert watcher.total == watcher.done == 2223 and not watcher.messages
        world = resolve_world(db, "vanilla")
        assert world.settings["source"] == "anvil" and world.settings["north"] == "-z"
        assert (world.min_y, world.height) == (-64, 384)
        for cx, cz in CHECKED:
            region = SAMPLE / "region" / f"r.{cx >> 5}.{cz >> 5}.mca"
            nbt = _mca.chunk_nbt(region, cx, cz)
            assert nbt["Status"] == "minecraft:full"
            check_chunk(db, world.id, nbt)


def test_block_entities_are_kept_in_chunk_metadata(database_url: str, tmp_path: Path) -> None:
    world_dir = small_world(tmp_path)
    with voxeldb.connect(database_url, cache="memory") as db:
        world_id = import_world(db, "anvil", world_dir, "chests")
        wc = world_chunks_table
        with db.engine.connect() as conn:
            rows = dict(
                conn.execute(
                    select(wc.c.chunk_x, wc.c.chunk_metadata).where(
                        wc.c.world_id == world_id, wc.c.chunk_z == -9, wc.c.chunk_x == -1
                    )
                ).all()
            )
    expected = _mca.chunk_nbt(world_dir / "region" / SMALL_REGION, -1, -9)["block_entities"]
    metadata = rows[-1]
    assert metadata["source"] == "anvil"
    assert metadata["block_entities"] == expected
    assert {e["id"] for e in expected} and all("x" in e for e in expected)


def test_every_compression_type_and_external_files(database_url: str, tmp_path: Path) -> None:
    region = SAMPLE / "region" / SMALL_REGION
    chunks = _mca.read_region(region)
    keys = sorted(full_chunks(region))[:5]
    raws = {k: zlib.decompress(chunks[k][1]) for k in keys}
    world_dir = tmp_path / "mixed"
    (world_dir / "region").mkdir(parents=True)
    encoders = [
        (1, gzip.compress),
        (2, zlib.compress),
        (3, bytes),
        (4, _mca.lz4_java),
        (128 + 2, zlib.compress),
    ]
    made = {k: (kind, fn(raws[k])) for k, (kind, fn) in zip(keys, encoders, strict=True)}
    _mca.write_region(world_dir / "region", -1, -1, made)
    with voxeldb.connect(database_url, cache="memory") as db:
        report = run_import(db, "anvil", world_dir, "mixed")
        assert (report.imported, report.damaged) == (5, 0)
        for key in keys:
            check_chunk(db, report.world_id, _mca.parse_nbt(raws[key]))


def damaged_world(tmp_path: Path) -> tuple[Path, tuple[int, int]]:
    """The small world with one full chunk's compressed bytes overwritten in the middle."""
    world_dir = small_world(tmp_path)
    path = world_dir / "region" / SMALL_REGION
    victim = sorted(full_chunks(SAMPLE / "region" / SMALL_REGION))[3]
    raw = bytearray(path.read_bytes())
    index = (victim[0] % 32) + (victim[1] % 32) * 32
    start = int.from_bytes(raw[4 * index : 4 * index + 3], "big") * _mca.SECTOR
    raw[start + 40 : start + 200] = b"\xde\xad\xbe\xef" * 40
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    return world_dir, victim


def test_a_damaged_chunk_is_named_and_the_rest_imported(database_url: str, tmp_path: Path) -> None:
    world_dir, victim = damaged_world(tmp_path)
    watcher = Watcher()
    with voxeldb.connect(database_url, cache="memory") as db:
        report = run_import(db, "anvil", world_dir, "damaged", progress=watcher)
        assert (report.imported, report.damaged) == (34, 1)
        assert watcher.messages == report.messages
        assert f"chunk ({victim[0]}, {victim[1]}) in {SMALL_REGION}" in report.messages[0]
        assert db.chunks(report.world_id).get(*victim) is None


def test_a_second_run_resumes_and_replace_imports_again(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    world_dir = small_world(tmp_path)
    with voxeldb.connect(database_url, cache="memory") as db:
        first = run_import(db, "anvil", world_dir, "resume")
        assert first.imported == 35 and first.created
        store = db.chunks(first.world_id)
        # An interrupted run: three chunks never written, one without its metadata yet.
        gone = sorted(full_chunks(world_dir / "region" / SMALL_REGION))[:4]
        for key in gone[:3]:
            assert store.delete(*key)
        wc = world_chunks_table
        with db.engine.begin() as conn:
            conn.execute(
                wc.update()
                .where(wc.c.world_id == first.world_id)
                .where(wc.c.chunk_x == gone[3][0], wc.c.chunk_z == gone[3][1])
                .values(chunk_metadata=null())
            )
        # A chunk edited after the import stays as edited by a resume.
        edited = sorted(full_chunks(world_dir / "region" / SMALL_REGION))[10]
        x, z = edited[0] * 16, edited[1] * 16
        store.set_block(x, 300, z, "voxeldb:marker")

        second = run_import(db, "anvil", world_dir, "resume")
        assert not second.created
        assert (second.imported, second.kept) == (4, 35 - 4)
        assert all(store.get(*key) is not None for key in gone)
        assert store.get_block(x, 300, z) == {"type": "voxeldb:marker"}

        third = run_import(db, "anvil", world_dir, "resume", replace=True)
        assert (third.imported, third.kept) == (35, 0)
        assert store.get_block(x, 300, z) == {"type": "air"}


def test_a_world_of_another_source_is_refused(database_url: str, tmp_path: Path) -> None:
    world_dir = small_world(tmp_path)
    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_world("mine", {"height": 384, "min_y": -64})
        with pytest.raises(voxeldb.errors.ValidationError, match="not imported from anvil"):
            import_world(db, "anvil", world_dir, "mine")
        with pytest.raises(FileNotFoundError):
            import_world(db, "anvil", tmp_path / "nowhere", "x")
        with pytest.raises(voxeldb.errors.ValidationError, match="source"):
            import_world(db, "bedrock", world_dir, "x")


def voxeldb_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxeldb", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_imports_names_damage_and_resumes(database_url: str, tmp_path: Path) -> None:
    world_dir, victim = damaged_world(tmp_path)
    args = ["--database-url", database_url, "import", "anvil", str(world_dir), "--world", "cli"]
    done = voxeldb_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "Imported 34 chunks into new world 'cli'" in done.stdout
    assert "286 not fully generated" in done.stdout and "1 damaged" in done.stdout
    assert f"skipped damaged chunk ({victim[0]}, {victim[1]})" in done.stderr
    assert "Traceback" not in done.stderr
    again = voxeldb_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "Imported 0 chunks into world 'cli'" in again.stdout
    assert "34 already there" in again.stdout
    replaced = voxeldb_cli(*args, "--replace")
    assert "Imported 34 chunks" in replaced.stdout
    missing = voxeldb_cli(
        "--database-url", database_url, "import", "anvil", str(tmp_path / "no"), "--world", "x"
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("voxeldb: error:") and "Traceback" not in missing.stderr


def old_chunk(cx: int, cz: int) -> bytes:
    """A chunk as Minecraft 1.17 saved it: everything under ``Level``."""
    level = {"xPos": cx, "zPos": cz, "Status": "full"}
    return zlib.compress(_mca.nbt_bytes({"DataVersion": 2730, "Level": level}))


def test_chunks_from_before_1_18(database_url: str, tmp_path: Path) -> None:
    old_world = tmp_path / "old"
    (old_world / "region").mkdir(parents=True)
    _mca.write_region(old_world / "region", 0, 0, {(0, 0): (2, old_chunk(0, 0))})
    region = SAMPLE / "region" / SMALL_REGION
    key = sorted(full_chunks(region))[0]
    mixed = tmp_path / "mixed"
    (mixed / "region").mkdir(parents=True)
    chunks = {key: _mca.read_region(region)[key], (-32, -32): (2, old_chunk(-32, -32))}
    _mca.write_region(mixed / "region", -1, -1, chunks)
    with voxeldb.connect(database_url, cache="memory") as db:
        with pytest.raises(voxeldb.errors.ValidationError, match=r"before 1\.18"):
            import_world(db, "anvil", old_world, "old")
        report = run_import(db, "anvil", mixed, "mixed")
    assert (report.imported, report.damaged) == (1, 1)
    assert "chunk (-32, -32)" in report.messages[0] and "before 1.18" in report.messages[0]


def test_a_directory_without_region_files_is_refused(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "region").mkdir()
    with voxeldb.connect(database_url, cache="memory") as db:
        with pytest.raises(voxeldb.errors.ValidationError, match="no region files"):
            import_world(db, "anvil", tmp_path, "none")
        with pytest.raises(FileNotFoundError, match="no region directory"):
            import_world(db, "anvil", tmp_path / "region", "none")
