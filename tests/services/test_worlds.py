"""Worlds, settings (and their cache) and block edits through voxeldb.services."""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests._services import free_port
from voxeldb import services
from voxeldb.errors import CoordinateError, NotFoundError, ValidationError
from voxeldb.meta import World, WorldChunk


@pytest.fixture(autouse=True)
def _db(session_local: sessionmaker[Session]) -> Iterator[None]:
    services.reset_cache()
    yield
    services.reset_cache()


def test_create_world_fills_in_settings() -> None:
    world = services.create_world("overworld", {"difficulty": "hard", "nested": {"a": [1, 2]}})
    assert world.name == "overworld"
    assert world.world_settings == {
        "difficulty": "hard",
        "nested": {"a": [1, 2]},
        "height": 384,
        "min_y": -64,
    }
    assert services.get_world_settings(world.id)["difficulty"] == "hard"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"height": 100}, "height"),
        ({"height": 0}, "height"),
        ({"height": 8192}, "height"),
        ({"height": True}, "height"),
        ({"height": "256"}, "height"),
        ({"min_y": 1.5}, "min_y"),
        ({"x": float("inf")}, "settings"),
        ({"x": object()}, "settings"),
        ([1, 2], "settings"),
    ],
)
def test_create_world_validation(settings: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        services.create_world("w", settings)  # type: ignore[arg-type]
    assert info.value.field == field


def test_world_names_are_unique() -> None:
    services.create_world("same", {})
    with pytest.raises(ValidationError, match="same") as info:
        services.create_world("same", {})
    assert info.value.field == "name"


def test_unknown_world_is_not_found_and_invalid() -> None:
    with pytest.raises(NotFoundError):
        services.get_world_settings(uuid.uuid4())
    with pytest.raises(ValidationError) as info:
        services.get_world_settings(str(uuid.uuid4()))
    assert info.value.field == "world_id"
    with pytest.raises(ValidationError, match="world_id"):
        services.get_world_settings("nope")


def test_settings_are_cached_in_process_and_invalidated(
    session_local: sessionmaker[Session],
) -> None:
    world = services.create_world("cached", {"height": 64, "min_y": 0, "weather": "rain"})
    assert services.get_world_settings(world.id)["weather"] == "rain"
    # Behind the cache's back: the cached copy is still served.
    with session_local() as s:
        s.execute(
            update(World).where(World.id == world.id).values(world_settings={"weather": "sun"})
        )
        s.commit()
    assert services.get_world_settings(world.id)["weather"] == "rain"
    services.update_world_settings(world.id, {"height": 64, "min_y": 0, "weather": "snow"})
    assert services.get_world_settings(str(world.id))["weather"] == "snow"
    # A caller mutating the result does not change the cache.
    services.get_world_settings(world.id)["weather"] = "hail"
    assert services.get_world_settings(world.id)["weather"] == "snow"


def test_settings_cache_in_redis(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", redis_prefix)
    services.reset_cache()
    world = services.create_world("redis-world", {"weather": "fog"})
    assert services.get_world_settings(world.id)["weather"] == "fog"
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys(f"{redis_prefix}:*:world:{world.id}:settings")
    assert client.get(key) is not None
    assert 0 < client.ttl(key) <= 3600
    services.update_world_settings(world.id, {"weather": "clear"})
    assert client.get(key) is None
    assert services.get_world_settings(world.id)["weather"] == "clear"


def test_settings_without_reachable_redis_fail_open(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    services.reset_cache()
    world = services.create_world("no-redis", {"weather": "wind"})
    with caplog.at_level(logging.WARNING, logger="voxeldb.services"):
        for _ in range(3):
            assert services.get_world_settings(world.id)["weather"] == "wind"
        services.update_world_settings(world.id, {"weather": "calm"})
        assert services.get_world_settings(world.id)["weather"] == "calm"
    warnings = [r for r in caplog.records if r.name == "voxeldb.services"]
    assert len(warnings) == 1
    assert "Redis" in warnings[0].getMessage()


def test_set_block_and_get_chunk() -> None:
    world = services.create_world("blocks", {"height": 32, "min_y": -16})
    created = services.set_block(str(world.id), -1, -16, -17, "stone")
    chunk = services.set_block(world.id, -16, 15, -32, {"type": "oak_log", "axis": "x"})
    assert (chunk.chunk_x, chunk.chunk_z) == (-1, -2)
    assert chunk.version != created.version
    got = services.get_chunk(world.id, -1, 0, -2)
    assert isinstance(got, WorldChunk)
    assert got.get_block_at(15, -16, 15) == {"type": "stone"}
    assert got.get_block_at(0, 15, 0) == {"type": "oak_log", "axis": "x"}
    assert got.get_block_at(1, 0, 1) == {"type": "air"}
    assert services.get_chunk(world.id, -1, 1, -2) is None  # chunks are columns: y is 0
    assert services.get_chunk(world.id, 5, 0, 5) is None


def test_set_block_validation() -> None:
    world = services.create_world("bad-blocks", {"height": 32, "min_y": 0})
    with pytest.raises(CoordinateError, match=r"0\.\.31"):
        services.set_block(world.id, 0, 32, 0, "stone")
    # Like every bad service input, also a ValidationError naming the argument.
    with pytest.raises(ValidationError, match=r"0\.\.31") as bad_y:
        services.set_block(world.id, 0, -1, 0, "stone")
    assert bad_y.value.field == "y"
    with pytest.raises(ValidationError, match="type") as bad_state:
        services.set_block(world.id, 0, 0, 0, {"axis": "y"})
    assert bad_state.value.field == "block_data"
    with pytest.raises(ValidationError) as info:
        services.set_block(world.id, 0.5, 0, 0, "stone")  # type: ignore[arg-type]
    assert info.value.field == "x"
    with pytest.raises(NotFoundError):
        services.set_block(uuid.uuid4(), 0, 0, 0, "stone")
    assert services.get_chunk(world.id, 0, 0, 0) is None


def test_height_cannot_change_under_stored_chunks() -> None:
    world = services.create_world("fixed", {"height": 32, "min_y": 0})
    services.set_block(world.id, 0, 0, 0, "stone")
    with pytest.raises(ValidationError, match="height"):
        services.update_world_settings(world.id, {"height": 64, "min_y": 0})
    services.update_world_settings(world.id, {"height": 32, "min_y": 0, "name": "ok"})
    assert services.get_world_settings(world.id)["name"] == "ok"


def test_concurrent_set_block_loses_no_edit(database_url: str) -> None:
    from tests.services import _workers

    world = services.create_world("busy", {"height": 16, "min_y": 0})
    created = services.set_block(world.id, 15, 15, 15, "stone")
    ctx = multiprocessing.get_context("spawn")
    rows = [0, 1, 2]
    barrier = ctx.Barrier(len(rows))
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_workers.set_blocks,
            args=(database_url, str(world.id), row, 8, barrier, out),
        )
        for row in rows
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(kind == "ok" for kind, _ in results), results
    chunk = services.get_chunk(world.id, 0, 0, 0)
    assert chunk is not None
    assert chunk.version != created.version
    for row in rows:
        for x in range(8):
            assert chunk.get_block_at(x, 0, row) == {"type": f"block_{row}"}


def test_settings_changed_in_a_callers_session(session_local: sessionmaker[Session]) -> None:
    world = services.create_world("tx", {"mood": "calm"})
    assert services.get_world_settings(world.id)["mood"] == "calm"
    with session_local() as s:
        services.update_world_settings(world.id, {"mood": "stormy"}, session=s)
        assert services.get_world_settings(world.id, session=s)["mood"] == "stormy"
        # Not committed yet: others still see (and may cache) the old settings.
        assert services.get_world_settings(world.id)["mood"] == "calm"
        s.commit()
    assert services.get_world_settings(world.id)["mood"] == "stormy"


def test_world_settings_do_not_leak_between_databases_sharing_a_redis(
    backend: str,
    database_url: str,
    database_templates: Any,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_prefix: str,
) -> None:
    from tests.chunks._backup import backup, restore
    from voxeldb.meta import configure

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("VOXELDB_REDIS_KEY_PREFIX", redis_prefix)
    services.reset_cache()
    world = services.create_world("copied", {"weather": "fog"})
    with tempfile.TemporaryDirectory() as tmp, database_templates[backend].clone() as copy_url:
        # A copy of the database: the same world id, other settings from now on.
        backup(database_url, Path(tmp) / "backup")
        restore(copy_url, Path(tmp) / "backup")
        services.update_world_settings(world.id, {"weather": "clear"})
        assert services.get_world_settings(world.id)["weather"] == "clear"  # cached
        configure(copy_url)
        try:
            assert services.get_world_settings(world.id)["weather"] == "fog"
        finally:
            configure(database_url)
    assert services.get_world_settings(world.id)["weather"] == "clear"


@pytest.mark.parametrize(("x", "z"), [(2**35, 0), (0, -(2**35) - 1), (2**64 - 16, 0)])
def test_set_block_outside_the_chunk_range_is_a_coordinate_error(x: int, z: int) -> None:
    world = services.create_world("far", {"height": 16, "min_y": 0})
    with pytest.raises(CoordinateError) as info:
        services.set_block(world.id, x, 0, z, "stone")
    assert isinstance(info.value, ValidationError)
    assert info.value.field in ("x", "z")
    for cx, cy, cz in ((2**31, 0, 0), (0, 0, -(2**31) - 1), (0, 2**40, 0)):
        with pytest.raises(CoordinateError):
            services.get_chunk(world.id, cx, cy, cz)
    assert services.get_chunk(world.id, 2**31 - 1, 0, 0) is None


@pytest.mark.parametrize(
    "state",
    ["a\x00", {"type": "x", "v": "\ud800"}, {"type": "x", "v": 10**5000}, "x" * 3000],
    ids=["nul", "surrogate", "bigint", "too-long"],
)
def test_hostile_block_data_is_a_validation_error(state: Any) -> None:
    world = services.create_world("hostile", {"height": 16, "min_y": 0})
    with pytest.raises(ValidationError) as info:
        services.set_block(world.id, 0, 0, 0, state)
    assert info.value.field == "block_data"
    assert services.get_chunk(world.id, 0, 0, 0) is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_set_block_under_contention_never_gives_up(database_url: str) -> None:
    from tests.services import _contention_workers

    world = services.create_world("contended", {"height": 16, "min_y": 0})
    ctx = multiprocessing.get_context("spawn")
    rows = list(range(6))
    count = 150
    barrier = ctx.Barrier(len(rows))
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_contention_workers.set_blocks,
            args=(database_url, str(world.id), row, count, barrier, out),
        )
        for row in rows
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(kind == "ok" for kind, _ in results), results
    assert [e for _, errors in results for e in errors] == []
    chunk = services.get_chunk(world.id, 0, 0, 0)
    assert chunk is not None
    for row in rows:
        for x in range(16):
            assert chunk.get_block_at(x, row // 16, row % 16) == {"type": f"b{row}_{x}"}
