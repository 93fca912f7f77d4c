"""Hostile snapshot files (issue 12, items 4, 10, 11, 14, 15): refused with one SnapshotError,
never a traceback, a planted password, a stolen account, a memory blow-up or a stale file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from tests._services import temporary_database
from tests.ops._worlds import build_world
from voxeldb._engine import make_engine
from voxeldb.chunks import encode_chunk
from voxeldb.errors import SnapshotError
from voxeldb.meta import Character, User, World, upgrade
from voxeldb.ops import CHUNKS_MEMBER, MANIFEST, read_manifest
from voxeldb.ops._snapshot._archive import CHUNK_MAGIC, RECORD
from voxeldb.setup import DatabaseSetup

# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A valid snapshot of the test world (3 x 3 chunks, users alice and bob)."""
    out = tmp_path_factory.mktemp("snap") / "good.vxsnap"
    with temporary_database("sqlite") as url:
        eng = make_engine(url)
        upgrade(eng)
        built = build_world(eng, size=3)
        eng.dispose()
        with DatabaseSetup(url) as setup:
            setup.create_world_snapshot(built.world_id, out)
    yield out


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model.__table__)).scalar_one())  # type: ignore[attr-defined]


def rewrite(
    src: Path,
    dst: Path,
    *,
    members: dict[str, bytes] | None = None,
    manifest: Callable[[dict[str, Any]], Any] | None = None,
    rehash: bool = True,
) -> Path:
    """A copy of ``src`` with ``members`` replaced (their sizes and SHA-256 updated in the
    manifest unless not ``rehash``), then ``manifest`` applied to the manifest."""
    members = members or {}
    with zipfile.ZipFile(src) as zin:
        data = {n: zin.read(n) for n in zin.namelist()}
    man = json.loads(data.pop(MANIFEST))
    for name, payload in members.items():
        data[name] = payload
        if rehash:
            man["members"][name] = {
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size": len(payload),
            }
    if manifest is not None:
        changed = manifest(man)
        man = man if changed is None else changed
    with zipfile.ZipFile(dst, "w") as zout:
        for name, payload in data.items():
            zout.writestr(name, payload, compress_type=zipfile.ZIP_DEFLATED)
        zout.writestr(MANIFEST, json.dumps(man), compress_type=zipfile.ZIP_DEFLATED)
    return dst


def chunk_records(path: Path) -> list[tuple[int, int, int, bytes, bytes]]:
    with zipfile.ZipFile(path) as zf:
        raw = zf.read(CHUNKS_MEMBER)
    assert raw.startswith(CHUNK_MAGIC)
    pos, out = len(CHUNK_MAGIC), []
    while pos < len(raw):
        cx, cz, ver, nd, nm = RECORD.unpack_from(raw, pos)
        pos += RECORD.size
        out.append((cx, cz, ver, raw[pos : pos + nd], raw[pos + nd : pos + nd + nm]))
        pos += nd + nm
    return out


def chunks_member(records: list[tuple[int, int, int, bytes, bytes]]) -> bytes:
    parts = [CHUNK_MAGIC]
    for cx, cz, ver, data, meta in records:
        parts += [RECORD.pack(cx, cz, ver, len(data), len(meta)), data, meta]
    return b"".join(parts)


def restore(url: str, path: Path, **kwargs: Any) -> uuid.UUID:
    with DatabaseSetup(url) as setup:
        return setup.restore_world_snapshot(path, **kwargs)


def assert_nothing_restored(url: str) -> None:
    eng = make_engine(url)
    try:
        assert _count(eng, World) == 0 and _count(eng, Character) == 0
    finally:
        eng.dispose()


def voxeldb_cmd(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = url
    env["VOXELDB_BCRYPT_ROUNDS"] = "4"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "voxeldb", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- item 14: a crafted manifest is one SnapshotError naming the field ---------------------


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        node: Any = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


CRAFTED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("no-world", _drop("world"), "world"),
    ("no-world-name", _drop("world", "name"), "world.name"),
    ("world-name-int", _set(5, "world", "name"), "world.name"),
    ("world-id-int", _set(5, "world", "id"), "world.id"),
    ("world-id-bad", _set("not-a-uuid", "world", "id"), "world.id"),
    ("no-counts", _drop("counts"), "counts"),
    ("counts-list", _set([], "counts"), "counts"),
    ("chunk-count-text", _set("abc", "counts", "world_chunks"), "counts.world_chunks"),
    ("chunk-count-negative", _set(-1, "counts", "world_chunks"), "counts.world_chunks"),
    ("no-tables", _drop("tables"), "tables"),
    ("tables-dict", _set({}, "tables"), "tables"),
    ("table-entry-text", _set("x", "tables", 0), "tables[0]"),
    ("table-no-member", _drop("tables", 0, "member"), "tables[0].member"),  # type: ignore[arg-type]
    ("table-no-table", _drop("tables", 0, "table"), "tables[0].table"),  # type: ignore[arg-type]
    ("table-role", _set("mine", "tables", 0, "role"), "tables[0].role"),
    ("table-member-unlisted", _set("tables/nope.json", "tables", 0, "member"), "tables[0].member"),
    ("no-members", _drop("members"), "members"),
    ("members-list", _set([], "members"), "members"),
    ("no-chunks-member", _drop("members", CHUNKS_MEMBER), CHUNKS_MEMBER),
    ("member-size-text", _set("12", "members", CHUNKS_MEMBER, "size"), "size"),
    ("member-sha-int", _set(1, "members", CHUNKS_MEMBER, "sha256"), "sha256"),
    ("member-text", _set("x", "members", CHUNKS_MEMBER), CHUNKS_MEMBER),
    ("world-height", _set("tall", "world", "height"), "world.height"),
    ("manifest-list", lambda m: [m], "manifest"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_manifest_is_a_snapshot_error_naming_the_field(
    good_snapshot: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any]], Any],
    field: str,
) -> None:
    bad = rewrite(good_snapshot, tmp_path / "crafted.vxsnap", manifest=change)
    with pytest.raises(SnapshotError) as info:
        read_manifest(bad)
    assert field in str(info.value)
    with temporary_database("sqlite") as url:
        with pytest.raises(SnapshotError) as info:
            restore(url, bad)
        assert field in str(info.value)


@pytest.mark.parametrize(
    "change",
    [_drop("counts"), _set("abc", "counts", "world_chunks"), _drop("world", "name")],
    ids=["no-counts", "chunk-count-text", "no-world-name"],
)
def test_cli_restore_of_a_crafted_manifest_is_one_line_exit_2(
    good_snapshot: Path, tmp_path: Path, change: Callable[[dict[str, Any]], Any]
) -> None:
    bad = rewrite(good_snapshot, tmp_path / "crafted.vxsnap", manifest=change)
    with temporary_database("sqlite") as url:
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        proc = voxeldb_cmd("snapshot", "restore", str(bad), url=url)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "snapshot" in lines[0]


# -- item 4: no planted passwords, no account taken over by e-mail -------------------------


def _users_member(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("tables/users.json"))  # type: ignore[no-any-return]


def test_password_hash_and_login_history_in_the_file_are_ignored(
    good_snapshot: Path, database_url: str, tmp_path: Path
) -> None:
    known = bcrypt.hashpw(b"planted password 123", bcrypt.gensalt(rounds=4)).decode()
    users = _users_member(good_snapshot)
    users["columns"] += ["password_hash", "auth_epoch", "last_login_at"]
    for row in users["rows"]:
        row += [known, 7, "2020-01-01T00:00:00+00:00"]
    bad = rewrite(
        good_snapshot,
        tmp_path / "planted.vxsnap",
        members={"tables/users.json": json.dumps(users).encode()},
    )
    restore(database_url, bad)
    eng = make_engine(database_url)
    try:
        with eng.connect() as conn:
            t = User.__table__
            rows = conn.execute(
                select(t.c.username, t.c.password_hash, t.c.auth_epoch, t.c.last_login_at)
            ).all()
    finally:
        eng.dispose()
    assert sorted(r[0] for r in rows) == ["alice", "bob"]
    for _, password_hash, epoch, last_login in rows:
        assert password_hash != known
        assert not User(password_hash=password_hash).check_password("planted password 123")
        assert not password_hash.startswith("$2")  # no bcrypt hash at all: unusable
        assert epoch == 0 and last_login is None


def _add_user(url: str, username: str, email: str) -> uuid.UUID:
    eng = make_engine(url)
    try:
        with eng.begin() as conn:
            uid = uuid.uuid4()
            conn.execute(
                User.__table__.insert(),
                [{"id": uid, "username": username, "email": email, "password_hash": "z" * 60}],
            )
        return uid
    finally:
        eng.dispose()


def _owners(url: str) -> dict[str, tuple[str, str]]:
    """character name -> (owner's username, e-mail)."""
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            c, u = Character.__table__, User.__table__
            rows = conn.execute(
                select(c.c.name, u.c.username, u.c.email).join(u, u.c.id == c.c.user_id)
            ).all()
    finally:
        eng.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_existing_user_with_the_same_email_is_not_matched_by_default(
    good_snapshot: Path, database_url: str
) -> None:
    _add_user(database_url, "victim", "ALICE@Example.COM")
    with pytest.raises(SnapshotError, match=r"alice@example\.com.*match_users_by_email"):
        restore(database_url, good_snapshot)
    assert_nothing_restored(database_url)
    # Opted in: the existing account gets the world's characters.
    restore(database_url, good_snapshot, match_users_by_email=True)
    owners = _owners(database_url)
    assert owners["Hero"] == ("victim", "ALICE@Example.COM")
    assert owners["Rogue"] == ("bob", "bob@example.com")


def test_existing_username_in_another_case_gets_the_file_user_a_fresh_name(
    good_snapshot: Path, database_url: str
) -> None:
    other = _add_user(database_url, "ALICE", "someone.else@example.com")
    restore(database_url, good_snapshot)
    owners = _owners(database_url)
    username, email = owners["Hero"]
    assert email == "alice@example.com"
    assert username.lower() not in ("alice",) and username.startswith("alice")
    eng = make_engine(database_url)
    try:
        with eng.connect() as conn:
            t = User.__table__
            kept = conn.execute(select(t.c.username).where(t.c.id == other)).scalar_one()
    finally:
        eng.dispose()
    assert kept == "ALICE"


def test_cli_restore_matches_users_by_email_only_when_asked(
    good_snapshot: Path, database_url: str
) -> None:
    _add_user(database_url, "victim", "alice@example.com")
    proc = voxeldb_cmd("snapshot", "restore", str(good_snapshot), url=database_url)
    assert proc.returncode == 2 and "--match-users-by-email" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    proc = voxeldb_cmd(
        "snapshot", "restore", str(good_snapshot), "--match-users-by-email", url=database_url
    )
    assert proc.returncode == 0, proc.stderr
    assert _owners(database_url)["Hero"][0] == "victim"


# -- item 11: every chunk decodes, at the world's height ------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "wrong-height"])
def test_restore_refuses_chunks_that_do_not_decode(
    good_snapshot: Path, database_url: str, tmp_path: Path, damage: str
) -> None:
    records = chunk_records(good_snapshot)
    cx, cz, ver, _, meta = records[4]
    if damage == "garbage":
        data = b"VXC" + bytes(range(200))
    else:
        data = encode_chunk(np.zeros((32, 16, 16), dtype=np.uint16))  # the world is 64 high
    records[4] = (cx, cz, ver, data, meta)
    bad = rewrite(
        good_snapshot,
        tmp_path / "undecodable.vxsnap",
        members={CHUNKS_MEMBER: chunks_member(records)},
    )
    with pytest.raises(SnapshotError, match=rf"chunk \({cx}, {cz}\)"):
        restore(database_url, bad)
    assert_nothing_restored(database_url)


# -- item 10: decompression bombs are refused within bounded memory -------------------------

_BOMB = 400 * 1024 * 1024
_RSS_BOUND_KB = 250 * 1024  # far below the bomb; a Python with voxeldb imported is ~100 MB

_RESTORE_CHILD = textwrap.dedent(
    """
    import sys
    from voxeldb.errors import SnapshotError
    from voxeldb.setup import DatabaseSetup
    try:
        with DatabaseSetup(sys.argv[1]) as setup:
            setup.restore_world_snapshot(sys.argv[2])
        outcome = "restored"
    except SnapshotError as exc:
        outcome = "SnapshotError: " + str(exc)
    # VmHWM is this process image's own peak: ru_maxrss keeps the peak of the pytest
    # process that spawned it (Linux carries it across exec), hundreds of MB in a full run.
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    print(outcome)
    """
)


def _bomb_member(
    zout: zipfile.ZipFile, name: str, head: bytes, filler: bytes, tail: bytes
) -> dict[str, Any]:
    """Write ``head``, ``filler`` up to the bomb's size, ``tail`` as one deflated member."""
    sha, size = hashlib.sha256(), 0
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zout.open(info, "w", force_zip64=True) as out:
        piece = filler * (1024 * 1024 // len(filler))
        for part in [head, *([piece] * (_BOMB // len(piece))), tail]:
            out.write(part)
            sha.update(part)
            size += len(part)
    return {"sha256": sha.hexdigest(), "size": size}


def _bomb(good: Path, dst: Path, target: str, inflate: bool) -> Path:
    """A small file with a 400 MB member; ``inflate``: counts raised so that the member's
    declared size passes the manifest's limits (the stream's own bounds must catch it)."""
    with zipfile.ZipFile(good) as zin:
        data = {n: zin.read(n) for n in zin.namelist()}
    man = json.loads(data.pop(MANIFEST))
    with zipfile.ZipFile(dst, "w", compresslevel=1) as zout:
        for name, payload in data.items():
            if name != target:
                zout.writestr(name, payload, compress_type=zipfile.ZIP_DEFLATED)
        if target == CHUNKS_MEMBER:
            # One record declaring a 400 MB chunk, which is there.
            head = CHUNK_MAGIC + RECORD.pack(0, 0, 1, _BOMB, 0)
            man["members"][target] = _bomb_member(zout, target, head, b"\0", b"")
            man["counts"]["world_chunks"] = 4000 if inflate else 1
        else:
            # One row whose single string is 400 MB long.
            payload = json.loads(data[target])
            cols = json.dumps(payload["columns"])
            start = f'{{"table":"{payload["table"]}","role":"owned","columns":{cols},"rows":[["'
            man["members"][target] = _bomb_member(zout, target, start.encode(), b"a", b'"]]}')
            if inflate:
                man["counts"][payload["table"]] = 200
        zout.writestr(MANIFEST, json.dumps(man))
    assert dst.stat().st_size < _BOMB // 20
    return dst


@pytest.mark.parametrize("inflate", [False, True], ids=["declared", "counts-inflated"])
@pytest.mark.parametrize("target", [CHUNKS_MEMBER, "tables/characters.json"])
def test_decompression_bomb_is_refused_in_bounded_memory(
    good_snapshot: Path, database_url: str, tmp_path: Path, target: str, inflate: bool
) -> None:
    bomb = _bomb(good_snapshot, tmp_path / "bomb.vxsnap", target, inflate)
    proc = subprocess.run(
        [sys.executable, "-c", _RESTORE_CHILD, database_url, str(bomb)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rss_kb, outcome = proc.stdout.splitlines()[-2:]
    assert outcome.startswith("SnapshotError"), outcome
    assert int(rss_kb) < _RSS_BOUND_KB, (int(rss_kb) // 1024, outcome)
    assert_nothing_restored(database_url)


# -- item 15: temp files of a killed `snapshot create` are cleaned by the next run ----------

_CREATE_CHILD = textwrap.dedent(
    """
    import sys, time
    from voxeldb.setup import DatabaseSetup

    def stall(n):
        print("writing", flush=True)
        time.sleep(600)

    with DatabaseSetup(sys.argv[1]) as setup:
        setup.create_world_snapshot(sys.argv[2], sys.argv[3], progress=stall)
    """
)


def test_temp_files_of_a_killed_create_are_removed_by_the_next_create(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    built = build_world(engine, size=2)
    out = tmp_path / "snaps"
    out.mkdir()
    stale: list[Path] = []
    for _ in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", _CREATE_CHILD, database_url, str(built.world_id), str(out)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "writing"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=60)
        left = [p for p in out.iterdir() if p not in stale]
        assert len(left) == 1 and left[0].name.startswith(".") and str(child.pid) in left[0].name
        stale += left
    # A temp file of a process that is alive (ours) and a stranger's file are left alone.
    alive = out / stale[0].name.replace(f"-{_pid_in(stale[0])}-", f"-{os.getpid()}-")
    alive.write_bytes(b"in progress")
    stranger = out / ".notes.tmp"
    stranger.write_bytes(b"keep")
    time.sleep(0.01)
    with DatabaseSetup(database_url) as setup:
        path = setup.create_world_snapshot(built.world_id, out / "w.vxsnap")
    assert sorted(p.name for p in out.iterdir()) == sorted([path.name, alive.name, stranger.name])
    assert read_manifest(path)["counts"]["world_chunks"] == 4


def _pid_in(path: Path) -> int:
    import re

    match = re.search(r"voxeldb-(\d+)-", path.name)
    assert match is not None, path.name
    return int(match.group(1))


# -- the block-state registry's token: fresh on restore, and a copy keeps its own ------------


def _tokens(engine: Engine) -> dict[uuid.UUID, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT world_id, token FROM block_state_tokens")).all()
    return {uuid.UUID(str(r[0])): int(r[1]) for r in rows}


def test_restore_gives_the_registry_a_fresh_token_and_a_copy_its_own(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    built = build_world(engine, size=1)
    before = _tokens(engine)
    assert built.world_id in before
    with DatabaseSetup(database_url) as setup:
        path = setup.create_world_snapshot(built.world_id, tmp_path / "t.vxsnap")
        with engine.begin() as conn:
            conn.execute(World.__table__.delete().where(World.__table__.c.id == built.world_id))  # type: ignore[attr-defined]
        assert setup.restore_world_snapshot(path) == built.world_id
        copy_id = setup.restore_world_snapshot(path, new_id=True, name="copy")
    after = _tokens(engine)
    assert after[built.world_id] != before[built.world_id]
    assert copy_id in after and after[copy_id] not in (
        after[built.world_id],
        before[built.world_id],
    )
