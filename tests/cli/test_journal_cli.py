"""``voxeldb history``, ``rollback``, ``watch`` and ``journal prune``: the real program, run in a
subprocess against real databases of both backends."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import voxeldb
from tests.cli.test_cli import assert_one_line_error, voxeldb_cmd
from voxeldb import Database

SETTINGS = {"height": 32, "min_y": 0}


def _world(db: Database, name: str = "Journaled") -> uuid.UUID:
    db.create_schema()
    return db.create_world(name, dict(SETTINGS))


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _as_json(change: Any) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "cx": change.cx,
        "cz": change.cz,
        "kind": change.kind,
        "version": change.version,
        "actor": change.actor,
        "at": change.at.astimezone(dt.UTC).isoformat(),
        "blocks": [
            {"x": b.x, "y": b.y, "z": b.z, "old": b.old, "new": b.new} for b in change.blocks
        ],
    }


def test_history_lists_the_journal_as_text_and_json(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _world(db)
        other = db.create_world("Elsewhere", dict(SETTINGS))
        db.chunks(other, actor="nobody").set_block(1, 1, 1, "dirt")
        db.chunks(wid, actor="builder").set_blocks(
            [(1, 2, 3, "stone"), (2, 2, 3, {"type": "oak_log", "axis": "y"}), (40, 5, 40, "dirt")]
        )
        db.chunks(wid, actor="griefer").set_block(1, 2, 3, "lava")
        db.chunks(wid).delete(2, 2)
        expected = [_as_json(c) for c in db.chunks(wid).changes()]
    assert [c["kind"] for c in expected] == ["edit", "edit", "edit", "delete"]

    origin = [c for c in expected if (c["cx"], c["cz"]) == (0, 0)]
    assert [c["actor"] for c in origin] == ["builder", "griefer"]

    text = voxeldb_cmd("history", "Journaled", url=database_url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 4 and "4 changes of world 'Journaled'" in text.stderr
    by_seq = {int(line.split()[0][1:]): line for line in lines}
    assert sorted(by_seq) == [c["seq"] for c in expected]
    first = by_seq[origin[0]["seq"]]
    assert "by builder" in first and "chunk (0, 0)" in first and "(1, 2, 3) air -> stone" in first
    assert '{"axis":"y","type":"oak_log"}' in first
    assert "(1, 2, 3) stone -> lava" in by_seq[origin[1]["seq"]]
    assert "delete" in lines[3] and "chunk (2, 2)" in lines[3] and "by -" in lines[3]

    as_json = voxeldb_cmd("history", str(wid), "--json", url=database_url)
    assert as_json.returncode == 0, as_json.stderr
    assert _jsonl(as_json.stdout) == expected
    assert as_json.stderr == ""

    def history(*args: str) -> list[dict[str, Any]]:
        proc = voxeldb_cmd("history", "Journaled", "--json", *args, url=database_url)
        assert proc.returncode == 0, proc.stderr
        return _jsonl(proc.stdout)

    assert history("--actor", "griefer") == [origin[1]]
    assert history("--area", "0", "0", "1", "1") == origin
    assert history("--area", "1", "1", "0", "0") == origin  # any corner order
    assert history("--since", "1h") == expected
    assert history("--limit", "2") == expected[:2]
    assert history("--actor", "nobody") == []  # the other world's actor

    assert_one_line_error(
        voxeldb_cmd("history", "Journaled", "--since", "2 hours", url=database_url),
        "--since",
        "not a duration",
    )
    assert_one_line_error(
        voxeldb_cmd("history", "Journaled", "--since", "99999999999d", url=database_url),
        "--since",
    )
    assert_one_line_error(
        voxeldb_cmd("history", "Nowhere", url=database_url), "no world named or with id 'Nowhere'"
    )


def test_rollback_preview_then_real_and_no_filter_is_refused(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _world(db)
        db.chunks(wid, actor="builder").set_blocks([(x, 4, 0, "stone") for x in range(4)])
        db.chunks(wid, actor="griefer").set_blocks(
            [(0, 4, 0, "tnt"), (1, 4, 0, "tnt"), (20, 4, 20, "tnt")]
        )
        db.chunks(wid, actor="builder").set_block(1, 4, 0, "glass")  # over a griefer's block
        head = db.chunks(wid).head()

    refused = voxeldb_cmd("rollback", "Journaled", url=database_url)
    assert_one_line_error(refused, "at least one filter")

    preview = voxeldb_cmd(
        "rollback", "Journaled", "--actor", "griefer", "--preview", url=database_url
    )
    assert preview.returncode == 0, preview.stderr
    assert "Would restore 2 blocks in 2 chunks" in preview.stdout
    assert "1 conflict left alone" in preview.stdout and "--preview" in preview.stdout
    with voxeldb.connect(database_url, cache="memory") as db:
        store = db.chunks(wid)
        assert store.head() == head  # wrote nothing
        assert store.get_block(0, 4, 0) == {"type": "tnt"}

    real = voxeldb_cmd("rollback", "Journaled", "--actor", "griefer", "--since", "1h",
                       url=database_url)  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert "Restored 2 blocks in 2 chunks" in real.stdout and "1 conflict" in real.stdout
    with voxeldb.connect(database_url, cache="memory") as db:
        store = db.chunks(wid)
        assert store.get_block(0, 4, 0) == {"type": "stone"}
        assert store.get_block(1, 4, 0) == {"type": "glass"}  # the conflict, left alone
        assert store.get_block(20, 4, 20) == {"type": "air"}
        undo = list(store.changes(head))
        assert undo and {c.actor for c in undo} == {"voxeldb rollback"}

    again = voxeldb_cmd("rollback", "Journaled", "--area", "0", "0", "0", "0", "--actor",
                        "griefer", url=database_url)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "Restored 0 blocks" in again.stdout


def _read_until(stream: IO[str], needle: str, deadline: float) -> str:
    seen = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not seen in {seen!r}")


def _popen(database_url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = database_url
    env["COLUMNS"] = "200"
    return subprocess.Popen(
        [sys.executable, "-m", "voxeldb", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_prints_a_change_written_by_another_process(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _world(db)
        db.chunks(wid, actor="before").set_block(0, 0, 0, "stone")
        before = db.chunks(wid).head()
    proc = _popen(database_url, "watch", "Journaled", "--json", "--timeout", "3")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        _read_until(proc.stderr, "Watching world 'Journaled'", time.monotonic() + 60)
        with voxeldb.connect(database_url, cache="memory") as db:
            db.chunks(wid, actor="far-away").set_blocks([(5, 6, 7, "gold"), (70, 6, 7, "gold")])
            db.chunks(wid, actor="far-away").set_block(5, 6, 7, "stone")
            expected = [_as_json(c) for c in db.chunks(wid).changes(before)]
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert _jsonl(stdout) == expected and len(expected) == 3
    assert "Traceback" not in stderr and "nothing new for 3 s" in stderr

    # --since-seq replays from there; --area filters.
    replay = voxeldb_cmd("watch", "Journaled", "--since-seq", str(before), "--area", "4", "0",
                         "4", "0", "--timeout", "0.5", "--json", url=database_url)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert _jsonl(replay.stdout) == [expected[1]]


def test_watch_stops_cleanly_on_ctrl_c(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        _world(db)
    proc = _popen(database_url, "watch", "Journaled")
    try:
        assert proc.stderr is not None
        _read_until(proc.stderr, "Watching world", time.monotonic() + 60)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr and stdout == ""


def test_journal_prune(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        wid = _world(db)
        other = db.create_world("Kept", dict(SETTINGS))
        db.chunks(wid, actor="a").set_blocks([(x * 16, 1, 0, "stone") for x in range(3)])
        db.chunks(other, actor="b").set_block(0, 1, 0, "stone")
        n = len(list(db.chunks(wid).changes()))
        head = db.chunks(wid).head()
    assert n == 3

    none = voxeldb_cmd("journal", "prune", "--older-than", "30d", url=database_url)
    assert none.returncode == 0, none.stderr
    assert "Pruned 0 journal entries older than 30 days (every world)" in none.stdout

    time.sleep(0.05)
    pruned = voxeldb_cmd("journal", "prune", "--older-than", "0s", "--world", "Journaled",
                         url=database_url)  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr
    assert f"Pruned {n} journal entries older than 0 seconds (world 'Journaled')" in pruned.stdout
    with voxeldb.connect(database_url, cache="memory") as db:
        assert list(db.chunks(wid).changes()) == []
        assert db.chunks(wid).head() == head  # the head stays: seq never goes back
        assert len(list(db.chunks(other).changes())) == 1
        assert db.chunks(wid).get_block(32, 1, 0) == {"type": "stone"}  # chunks untouched

    assert_one_line_error(
        voxeldb_cmd("journal", "prune", "--older-than", "30x", url=database_url),
        "--older-than",
        "not a duration",
    )
    assert_one_line_error(
        voxeldb_cmd("journal", "prune", "--older-than", "1d", "--world", "Nope", url=database_url),
        "no world named or with id 'Nope'",
    )
    missing = voxeldb_cmd("journal", "prune", url=database_url)
    assert missing.returncode == 2 and "--older-than" in missing.stderr


def test_journal_help_is_plain(tmp_path: Path) -> None:
    for args in (["history", "--help"], ["rollback", "--help"], ["watch", "--help"],
                 ["journal", "prune", "--help"]):  # fmt: skip
        proc = voxeldb_cmd(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "<bool>" not in proc.stdout
    assert "CX0 CZ0 CX1 CZ1" in voxeldb_cmd("history", "--help").stdout
