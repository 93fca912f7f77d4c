"""A world's ``"compression"`` setting: every writer of its chunks uses it (CONTRACT §2)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

import voxeldb
from tests.chunks.store_contract import HEIGHT, MIN_Y
from voxeldb import Database, services
from voxeldb.chunks import world_chunks_table
from voxeldb.errors import ValidationError

_LZ4, _ZSTD, _NONE = 1, 2, 0


@pytest.fixture
def cdb(database_url: str) -> Iterator[Database]:
    database = voxeldb.connect(database_url, cache="memory")
    yield database
    database.close()


def _world(db: Database, **codec: object) -> uuid.UUID:
    settings = {"height": HEIGHT, "min_y": MIN_Y, **codec}
    return db.create_world(f"c-{uuid.uuid4().hex[:8]}", settings)


def _compressors(db: Database, world_id: uuid.UUID) -> dict[tuple[int, int], int]:
    """The compressor id in each stored chunk's header (docs/chunk-format.md)."""
    t = world_chunks_table
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(t.c.chunk_x, t.c.chunk_z, t.c.data).where(t.c.world_id == world_id)
        ).all()
    found = {}
    for cx, cz, data in rows:
        data = bytes(data)
        version, flags = data[4], data[6]
        found[(cx, cz)] = data[7] if version == 2 else (_LZ4 if flags & 1 else _NONE)
    return found


def _terrain() -> np.ndarray:
    blocks = np.zeros((HEIGHT, 16, 16), dtype=np.uint16)
    blocks[:20] = 1
    blocks[20:24] = 2
    return blocks


@pytest.mark.parametrize(("codec", "expected"), [({}, _LZ4), ({"compression": "zstd"}, _ZSTD)])
def test_every_chunk_writer_uses_the_worlds_compression(
    cdb: Database, codec: dict[str, object], expected: int
) -> None:
    wid = _world(cdb, **codec)
    store = cdb.chunks(wid, actor="user:tester")
    store.put(0, 0, _terrain())
    store.put_many([(1, 0, _terrain()), (2, 0, _terrain())])
    store.set_blocks([(3 * 16, 5, 0, "stone"), (1, 30, 1, "glass")])
    assert _compressors(cdb, wid) == {k: expected for k in [(0, 0), (1, 0), (2, 0), (3, 0)]}
    before = store.get(0, 0)
    time.sleep(0.01)
    since = dt.datetime.now(dt.UTC)
    store.set_blocks([(5, MIN_Y + 10, 5, "glass")])  # into the terrain of chunk (0, 0)
    report = store.rollback(actor="user:tester", start=since)
    assert report.blocks == 1  # the undo rewrote chunk (0, 0)...
    assert _compressors(cdb, wid)[(0, 0)] == expected  # ...with the world's compressor
    np.testing.assert_array_equal(store.get(0, 0), before)


def test_a_zstd_world_reads_back_what_was_written(cdb: Database, database_url: str) -> None:
    wid = _world(cdb, compression="zstd", compression_level=19)
    store = cdb.chunks(wid)
    store.put(5, -5, _terrain())
    store.set_blocks([(5 * 16 + 3, 40, -5 * 16 + 2, "glass")])
    other = voxeldb.connect(database_url, cache="memory")  # its own empty cache: decoded
    try:
        got = other.chunks(wid).get(5, -5)
        assert got is not None
        expected = _terrain()
        assert other.chunks(wid).get_block(5 * 16 + 3, 40, -5 * 16 + 2) == {"type": "glass"}
        expected[40 - MIN_Y, 2, 3] = got[40 - MIN_Y, 2, 3]
        np.testing.assert_array_equal(got, expected)
    finally:
        other.close()
    assert _compressors(cdb, wid) == {(5, -5): _ZSTD}


@pytest.mark.usefixtures("session_local")
def test_an_agents_edits_use_the_worlds_compression(cdb: Database) -> None:
    wid = _world(cdb, compression="none")
    agent = services.create_agent(f"mason-{uuid.uuid4().hex[:6]}")
    services.run_agent_activity(
        agent.agent_name, wid, "build", {"what": "wall"}, edits=[(0, 0, 0, "cobblestone")]
    )
    assert _compressors(cdb, wid) == {(0, 0): _NONE}


@pytest.mark.parametrize(
    ("codec", "field"),
    [
        ({"compression": "brotli"}, "compression"),
        ({"compression": 3}, "compression"),
        ({"compression": "zstd", "compression_level": 23}, "compression_level"),
        ({"compression": "lz4", "compression_level": "high"}, "compression_level"),
        ({"compression": "none", "compression_level": 3}, "compression_level"),
    ],
)
@pytest.mark.usefixtures("session_local")
def test_an_unknown_compression_is_refused_at_create_world(
    cdb: Database, codec: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _world(cdb, **codec)
    assert caught.value.field == field
    assert str(next(iter(codec.values()))) in str(caught.value) or field in str(caught.value)
    wid = _world(cdb)
    with pytest.raises(ValidationError):
        services.update_world_settings(wid, {"height": HEIGHT, "min_y": MIN_Y, **codec})
    assert cdb.chunks(wid).compression == "lz4"
