"""Issue 12 regressions in the storage engine: restores, coordinates, hostile block states."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

import voxeldb
from tests.chunks import _hardening_workers
from tests.chunks._backup import backup, restore
from voxeldb.chunks import clear_memo
from voxeldb.errors import CoordinateError, ValidationError

SHAPE = {"height": 16, "min_y": 0}


def _in_another_process(target: Any, *args: Any) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0


# --- item 1: restoring a backup -------------------------------------------------------


@pytest.mark.parametrize("editor", ["store", "services"])
def test_a_restored_backup_never_serves_a_later_chunk_from_redis(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    editor: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", redis_prefix)
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        db.chunks(world).set_block(0, 0, 0, "stone")
    backup(database_url, tmp_path / "backup")
    with voxeldb.connect(database_url, cache=redis_url) as db:
        store = db.chunks(world)
        store.set_block(1, 0, 0, "dirt")  # written through to Redis
        assert store.get_block(1, 0, 0) == {"type": "dirt"}
    restore(database_url, tmp_path / "backup")
    # Edited again after the restore, by a writer that does not reach Redis.
    if editor == "store":
        with voxeldb.connect(database_url, cache="memory") as db:
            db.chunks(world).set_block(2, 0, 0, "glass")
    else:
        from voxeldb import services
        from voxeldb.meta import configure

        configure(database_url)
        try:
            services.set_block(world, 2, 0, 0, "glass")
        finally:
            configure(None)
    with voxeldb.connect(database_url, cache="memory") as db:
        truth = np.array(db.chunks(world).get(0, 0))
    with voxeldb.connect(database_url, cache=redis_url) as db:  # a new reader through Redis
        store = db.chunks(world)
        got = store.get(0, 0)
        assert got is not None and np.array_equal(got, truth)
        assert store.get_block(1, 0, 0) == {"type": "air"}
        assert store.get_block(2, 0, 0) == {"type": "glass"}


def test_the_block_state_memo_of_a_process_that_outlives_a_restore(
    database_url: str, tmp_path: Path
) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        store = db.chunks(world)
        store.set_block(0, 0, 0, "stone")
        backup(database_url, tmp_path / "backup")
        store.set_block(1, 0, 0, "gold")
        assert store.get_block(1, 0, 0) == {"type": "gold"}  # this process learns gold's id
        restore(database_url, tmp_path / "backup")
        db.engine.dispose()
        db.lru.clear()
        # Another process registers a state in the restored registry: it gets gold's old id.
        _in_another_process(
            _hardening_workers.set_block, database_url, str(world), 2, 0, 0, "diamond"
        )
        assert store.get_block(2, 0, 0) == {"type": "diamond"}
        store.set_block(3, 0, 0, "gold")
        assert store.get_block(3, 0, 0) == {"type": "gold"}
        assert store.get_block(2, 0, 0) == {"type": "diamond"}
        assert store.get_block(1, 0, 0) == {"type": "air"}


def test_every_write_takes_a_version_never_seen_before(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        store = db.chunks(world)
        seen = set()
        for i in range(5):
            store.set_block(i, 0, 0, "stone")
            store.put(1, 1, np.full((16, 16, 16), i, dtype=np.uint16))
            store.put_many([(2, 2, np.zeros((16, 16, 16), dtype=np.uint16))])
            with db.engine.connect() as conn:
                versions = conn.execute(text("SELECT version FROM world_chunks")).scalars().all()
            assert not seen & set(versions)
            assert all(v >= 2**62 for v in versions)
            seen |= set(versions)
            store.delete(2, 2)


# --- item 2: coordinates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "z"),
    [
        (2**64 - 16, 5, 7),
        (2**63, 5, 7),
        (0, 2**64 - 1, 0),
        (0, 5, 2**64 - 16),
        (-(2**63) - 1, 5, 0),
        (2**70, 5, 0),
    ],
)
def test_coordinates_outside_int64_are_refused(database_url: str, x: int, y: int, z: int) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", {"height": 384, "min_y": -64})
        store = db.chunks(world)
        with pytest.raises(CoordinateError):
            store.set_block(x, y, z, "stone")
        with pytest.raises(CoordinateError):
            store.set_blocks([(0, 0, 0, "dirt"), (x, y, z, "stone")])
        with pytest.raises(CoordinateError):
            store.get_block(x, y, z)
        assert store.region(-(2**31), -(2**31), 2**31 - 1, 2**31 - 1) == {}


# --- items 12 and 13: block states -------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return {"type": "deep", "n": value}


HOSTILE: list[Any] = [
    "a\x00b",
    {"type": "ok", "v": "nul\x00"},
    {"type": "ok", "k\x00": 1},
    "\ud800",
    {"type": "ok", "v": "\udfff"},
    {"type": "ok", "\udc80": 1},
    _nested(900),
    _nested(40),
    {"type": "big", "v": 10**5000},
    {"type": "big", "v": 2**63},
    {"type": "big", "v": -(2**63) - 1},
    {"type": "huge", "blob": "a" * 5_000_000},
    {"type": "wide", "blob": "é" * 1100},
]


@pytest.mark.parametrize("state", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_block_states_are_validation_errors(database_url: str, state: Any) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        store = db.chunks(world)
        with pytest.raises(ValidationError) as info:
            store.set_block(0, 0, 0, state)
        assert info.value.field == "state"
        assert store.get(0, 0) is None
        store.set_block(0, 0, 0, {"type": "fine", "n": _nested(20)["n"], "v": 2**63 - 1})


ROUND_TRIP: list[dict[str, Any]] = [
    {"type": "f", "v": 1e20},
    {"type": "f", "v": 1e300},
    {"type": "f", "v": 1.0},
    {"type": "f", "v": 2.5e-12},
    {"type": "f", "v": [1e16, 10**16, -(2**63), 2**63 - 1, 0.1]},
    {"type": "f", "nested": {"a": {"b": 123456789.0}}},
]


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return (type(value), value)


@pytest.mark.parametrize("state", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_block_states_read_back_as_written(database_url: str, state: dict[str, Any]) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        store = db.chunks(world)
        store.set_block(0, 0, 0, state)
        clear_memo()  # read it from the database
        got = store.get_block(0, 0, 0)
    assert _types(got) == _types(state)


# --- item 8: many new states in one call ----------------------------------------------------


def test_set_blocks_with_more_new_states_than_bind_parameters(database_url: str) -> None:
    n = 65_536
    edits = [
        (i % 16, (i // 256) % 16, (i // 16) % 16 + 16 * (i // 4096), f"s{i}") for i in range(n)
    ]
    with voxeldb.connect(database_url, cache="memory") as db:
        world = db.create_world("w", SHAPE)
        store = db.chunks(world)
        assert store.set_blocks(edits) == n
        clear_memo()
        for i in (0, 65_534, n - 1):
            x, y, z, state = edits[i]
            assert store.get_block(x, y, z) == {"type": state}
