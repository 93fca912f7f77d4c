"""World snapshots: byte-identical chunks across backends, atomic files, clear corruption errors."""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests._services import temporary_database
from tests.ops._worlds import build_world, chunk_bytes
from voxeldb._engine import make_engine
from voxeldb.errors import NotFoundError, SnapshotError
from voxeldb.meta import (
    AIAgent,
    AIAgentActivity,
    BlockState,
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    StoryChoice,
    User,
    World,
    WorldEvolutionLog,
    upgrade,
)
from voxeldb.ops import CHUNKS_MEMBER, MANIFEST, read_manifest
from voxeldb.setup import DatabaseSetup


def _count(engine: Engine, model: type, **where: object) -> int:
    table = model.__table__  # type: ignore[attr-defined]
    q = select(func.count()).select_from(table)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def _other(backend: str) -> str:
    return "postgresql" if backend == "sqlite" else "sqlite"


def test_snapshot_restores_byte_identical_on_the_other_backend(
    database_url: str, backend: str, engine: Engine, tmp_path: Path
) -> None:
    built = build_world(engine)
    setup = DatabaseSetup(database_url)
    try:
        path = setup.create_world_snapshot(built.world_id, tmp_path / "w.vxsnap")
    finally:
        setup.close()
    assert path == tmp_path / "w.vxsnap" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["w.vxsnap"]  # no temp file left behind
    manifest = read_manifest(path)
    assert manifest["world"] == {
        "id": str(built.world_id),
        "name": "snapworld",
        "height": 64,
        "min_y": 0,
    }
    assert manifest["counts"]["world_chunks"] == 9
    assert manifest["counts"]["characters"] == 2
    assert manifest["counts"]["character_relationships"] == 1  # the cross-world one stays home
    assert manifest["counts"]["users"] == 2
    with zipfile.ZipFile(path) as zf:
        users = json.loads(zf.read("tables/users.json"))
    assert "password_hash" not in users["columns"] and "auth_epoch" not in users["columns"]
    assert {"id", "username", "email"} <= set(users["columns"])

    with temporary_database(_other(backend)) as target_url:
        target = DatabaseSetup(target_url)
        try:
            target.create_tables()
            world_id = target.restore_world_snapshot(path)
            teng = make_engine(target_url)
            try:
                assert world_id == built.world_id
                restored = chunk_bytes(teng, world_id)
                assert {k: data for k, (data, _) in restored.items()} == built.chunk_bytes
                # Fresh versions, past any a cache may hold from before (not the file's 3).
                assert all(version > 10**15 for _, version in restored.values())
                assert _count(teng, World) == 1
                assert _count(teng, BlockState, world_id=world_id) == _count(
                    engine, BlockState, world_id=built.world_id
                )
                assert _count(teng, Character) == 2
                assert _count(teng, InventoryItem) == 2
                assert _count(teng, CharacterRelationship) == 1
                assert _count(teng, Story) == 1
                assert _count(teng, StoryChoice) == 2
                assert _count(teng, AIAgent) == 1
                assert _count(teng, AIAgentActivity) == 1
                assert _count(teng, WorldEvolutionLog) == 1
                with teng.connect() as conn:
                    ut = User.__table__
                    rows = conn.execute(select(ut.c.username, ut.c.password_hash)).all()
                    ct = StoryChoice.__table__
                    choice_chars = conn.execute(
                        select(ct.c.choice_text, ct.c.character_id).order_by(ct.c.choice_order)
                    ).all()
                    wt = World.__table__
                    created_by = conn.execute(select(wt.c.created_by)).scalar_one()
                assert sorted(r[0] for r in rows) == ["alice", "bob"]
                # Password hashes never travel: restored users get an unusable marker (no
                # bcrypt hash: no password matches it) and must be given a password.
                assert all(r[1].startswith("!restored:") for r in rows)
                assert len({r[1] for r in rows}) == 2
                assert not any(User(password_hash=r[1]).check_password("x" * 12) for r in rows)
                assert choice_chars[0][1] is not None and choice_chars[1][1] is None
                assert created_by == built.user_ids[0]

                # A second restore of the same world is refused, then works as a copy.
                with pytest.raises(SnapshotError, match="already exists"):
                    target.restore_world_snapshot(path)
                with pytest.raises(SnapshotError, match="already exists"):
                    target.restore_world_snapshot(path, new_id=True)  # same name
                copy_id = target.restore_world_snapshot(path, new_id=True, name="copy")
                assert copy_id != world_id
                assert {k: d for k, (d, _) in chunk_bytes(teng, copy_id).items()} == {
                    k: d for k, (d, _) in chunk_bytes(teng, world_id).items()
                }
                assert _count(teng, Character, world_id=copy_id) == 2
                assert _count(teng, User) == 2  # existing users are reused, not duplicated
                assert _count(teng, AIAgent) == 1
            finally:
                teng.dispose()
        finally:
            target.close()


def test_restore_into_the_same_database_after_deleting_the_world(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    built = build_world(engine, size=2)
    setup = DatabaseSetup(database_url)
    try:
        path = setup.create_world_snapshot(str(built.world_id), tmp_path)
        assert path.parent == tmp_path and path.name.startswith("snapworld-")
        with engine.begin() as conn:
            conn.execute(World.__table__.delete().where(World.__table__.c.id == built.world_id))
        assert chunk_bytes(engine, built.world_id) == {}
        assert setup.restore_world_snapshot(path) == built.world_id
        assert {k: v[0] for k, v in chunk_bytes(engine, built.world_id).items()} == (
            built.chunk_bytes
        )
        # The other world was never touched by the snapshot.
        assert _count(engine, Character, world_id=built.other_world_id) == 1
        with pytest.raises(NotFoundError):
            setup.create_world_snapshot(uuid.uuid4(), tmp_path)
    finally:
        setup.close()


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with temporary_database("sqlite") as url:
        eng = make_engine(url)
        upgrade(eng)
        build_world(eng, size=3)
        eng.dispose()
        setup = DatabaseSetup(url)
        with eng.connect() as conn:
            wid = conn.execute(
                select(World.__table__.c.id).where(World.__table__.c.name == "snapworld")
            ).scalar_one()
        path = setup.create_world_snapshot(wid, tmp_path / "good.vxsnap")
        setup.close()
        yield path, url


def _restore_into_fresh(path: Path) -> None:
    with temporary_database("sqlite") as url:
        setup = DatabaseSetup(url)
        try:
            setup.create_tables()
            setup.restore_world_snapshot(path)
        except SnapshotError:
            # A failed restore leaves nothing behind (one transaction).
            eng = make_engine(url)
            assert _count(eng, World) == 0 and _count(eng, User) == 0
            eng.dispose()
            raise
        finally:
            setup.close()


def _member_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = path.read_bytes()
    start = info.header_offset
    name_len = int.from_bytes(raw[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(raw[start + 28 : start + 30], "little")
    return start + 30 + name_len + extra_len


@pytest.mark.parametrize("where", [CHUNKS_MEMBER, "tables/characters.json", MANIFEST])
def test_flipped_byte_is_a_clear_snapshot_error(
    snapshot_file: tuple[Path, str], tmp_path: Path, where: str
) -> None:
    path, _ = snapshot_file
    raw = bytearray(path.read_bytes())
    offset = _member_offset(path, where) + 40
    raw[offset] ^= 0x5A
    bad = tmp_path / "bad.vxsnap"
    bad.write_bytes(bytes(raw))
    with pytest.raises(SnapshotError, match=r"corrupt|not a") as info:
        _restore_into_fresh(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.97, 10])
def test_truncated_file_is_a_clear_snapshot_error(
    snapshot_file: tuple[Path, str], tmp_path: Path, keep: float
) -> None:
    path, _ = snapshot_file
    raw = path.read_bytes()
    n = int(len(raw) * keep) if keep < 1 else len(raw) - int(keep)
    bad = tmp_path / "short.vxsnap"
    bad.write_bytes(raw[:n])
    with pytest.raises(SnapshotError, match=r"truncated|corrupt"):
        _restore_into_fresh(bad)


def test_missing_and_foreign_files_are_snapshot_errors(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        _restore_into_fresh(tmp_path / "absent.vxsnap")
    not_zip = tmp_path / "notes.txt"
    not_zip.write_text("hello")
    with pytest.raises(SnapshotError, match="not a readable snapshot"):
        _restore_into_fresh(not_zip)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(SnapshotError, match=r"no manifest\.json"):
        _restore_into_fresh(foreign)
    future = tmp_path / "future.zip"
    with zipfile.ZipFile(future, "w") as zf:
        zf.writestr(
            MANIFEST, json.dumps({"format": "voxeldb-world-snapshot", "format_version": 99})
        )
    with pytest.raises(SnapshotError, match="format version 99"):
        _restore_into_fresh(future)


def test_crash_while_writing_leaves_no_file(
    snapshot_file: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = snapshot_file

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    target = tmp_path / "out" / "w.vxsnap"
    target.parent.mkdir()
    setup = DatabaseSetup(url)
    try:
        eng = make_engine(url)
        with eng.connect() as conn:
            wid = conn.execute(
                select(World.__table__.c.id).where(World.__table__.c.name == "snapworld")
            ).scalar_one()
        eng.dispose()
        monkeypatch.setattr(os, "fsync", boom)
        with pytest.raises(OSError, match="disk full"):
            setup.create_world_snapshot(wid, target)
        assert os.listdir(target.parent) == []
    finally:
        setup.close()


def test_restore_over_a_deleted_world_never_serves_its_cached_chunks(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: Any
) -> None:
    import numpy as np

    monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", redis_prefix)
    setup = DatabaseSetup(database_url, cache=redis_url)
    try:
        setup.create_tables()
        db = setup.db
        world_id = db.create_world("cached", {"height": 32, "min_y": 0})
        store = db.chunks(world_id)
        a = np.zeros((32, 16, 16), dtype=np.uint16)
        a[0] = 1
        store.put(0, 0, a)
        path = setup.create_world_snapshot(world_id, tmp_path / "c.vxsnap")
        # The chunk is recreated (its version may start again) and cached with other content.
        store.delete(0, 0)
        b = np.zeros((32, 16, 16), dtype=np.uint16)
        b[:5] = 1
        store.put(0, 0, b)
        assert np.array_equal(store.get(0, 0), b)
        with db.session() as s:
            s.execute(World.__table__.delete().where(World.__table__.c.id == world_id))
        assert setup.restore_world_snapshot(path) == world_id
        assert np.array_equal(db.chunks(world_id).get(0, 0), a)
    finally:
        setup.close()
    fresh = DatabaseSetup(database_url, cache=redis_url)
    try:
        assert np.array_equal(fresh.db.chunks(world_id).get(0, 0), a)
    finally:
        fresh.close()


def test_edits_after_a_restore_never_match_versions_cached_before_the_deletion(
    database_url: str, tmp_path: Path
) -> None:
    import numpy as np

    import voxeldb

    setup = DatabaseSetup(database_url, cache="memory")
    reader = voxeldb.connect(database_url, cache="memory")  # another server, its own LRU
    try:
        setup.create_tables()
        db = setup.db
        world_id = db.create_world("edited", {"height": 32, "min_y": 0})
        store = db.chunks(world_id)
        store.put(0, 0, np.zeros((32, 16, 16), dtype=np.uint16))
        path = setup.create_world_snapshot(world_id, tmp_path / "e.vxsnap")
        # Edited after the snapshot (versions v + 1, v + 2); the other server caches v + 2.
        store.set_block(5, 9, 5, "glass")
        store.set_block(6, 9, 6, "glass")
        assert reader.chunks(world_id).get_block(5, 9, 5) == {"type": "glass"}
        with db.session() as s:
            s.execute(World.__table__.delete().where(World.__table__.c.id == world_id))
        assert setup.restore_world_snapshot(path) == world_id
        restored = db.chunks(world_id)
        restored.set_block(1, 9, 1, "stone")
        restored.set_block(2, 9, 2, "stone")
        seen = reader.chunks(world_id)
        assert seen.get_block(5, 9, 5) == {"type": "air"}
        assert seen.get_block(1, 9, 1) == {"type": "stone"}
    finally:
        reader.close()
        setup.close()
