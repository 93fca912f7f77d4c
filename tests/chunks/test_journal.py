"""The world journal (CONTRACT §7): entries of every write, reads, watch, rollback, prune.

Both backends, in-process cache only (the journal does not depend on the cache tier).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import text

import voxeldb
from tests.chunks.store_contract import HEIGHT, MIN_Y, SHAPE
from voxeldb import BlockEdit, Change, ChunkStore, Database, RollbackReport
from voxeldb.chunks import _journal
from voxeldb.errors import ValidationError

AIR = {"type": "air"}


@pytest.fixture
def jdb(database_url: str) -> Iterator[Database]:
    database = voxeldb.connect(database_url, cache="memory")
    yield database
    database.close()


@pytest.fixture
def jworld(jdb: Database) -> uuid.UUID:
    return jdb.create_world(f"j-{uuid.uuid4().hex[:8]}", {"height": HEIGHT, "min_y": MIN_Y})


@pytest.fixture
def jstore(jdb: Database, jworld: uuid.UUID) -> ChunkStore:
    return jdb.chunks(jworld, actor="user:alice")


def _filled(state_id: int) -> np.ndarray:
    return np.full(SHAPE, state_id, dtype=np.uint16)


def test_public_names() -> None:
    assert voxeldb.Change is Change and voxeldb.BlockEdit is BlockEdit
    assert voxeldb.RollbackReport is RollbackReport
    assert Change.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_actor_longer_than_200_is_refused(jdb: Database, jworld: uuid.UUID) -> None:
    assert jdb.chunks(jworld, actor="a" * 200).actor == "a" * 200
    with pytest.raises(ValidationError):
        jdb.chunks(jworld, actor="a" * 201)


def test_every_write_has_one_entry(jstore: ChunkStore) -> None:
    assert jstore.head() == 0
    jstore.set_block(1, 0, 2, "stone")
    jstore.set_blocks([(17, 1, 0, "dirt"), (18, 1, 0, {"type": "oak_log", "axis": "y"})])
    jstore.put(5, 5, _filled(0))
    jstore.put_many([(6, 6, _filled(0)), (7, 7, _filled(0))])
    assert jstore.delete(5, 5) is True
    assert jstore.delete(5, 5) is False  # nothing deleted: no entry
    changes = list(jstore.changes())
    assert [c.seq for c in changes] == list(range(1, 7))
    assert jstore.head() == 6
    assert [(c.kind, c.cx, c.cz) for c in changes] == [
        ("edit", 0, 0),
        ("edit", 1, 0),
        ("put", 5, 5),
        ("put", 6, 6),
        ("put", 7, 7),
        ("delete", 5, 5),
    ]
    assert all(c.actor == "user:alice" for c in changes)
    assert all(c.at.tzinfo is not None for c in changes)
    first = changes[0]
    assert first.blocks == (BlockEdit(1, 0, 2, AIR, {"type": "stone"}),)
    assert first.version is not None and changes[-1].version is None
    assert {b.new["type"] for b in changes[1].blocks} == {"dirt", "oak_log"}
    assert list(jstore.changes(since=5)) == changes[5:]
    assert list(jstore.changes(limit=2)) == changes[:2]
    assert [c.seq for c in jstore.changes(area=(5, 5, 6, 6))] == [3, 4, 6]
    assert list(jstore.changes(actor="someone else")) == []


def test_a_failed_write_leaves_no_entry(jstore: ChunkStore) -> None:
    jstore.set_block(0, 0, 0, "stone")

    def items() -> Iterator[tuple[int, int, np.ndarray]]:
        yield (0, 1, _filled(0))
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        jstore.put_many(items())
    with pytest.raises(ValueError):
        jstore.set_blocks([(0, 0, 0, "dirt"), (0, 10_000, 0, "dirt")])
    assert jstore.head() == 1
    assert len(list(jstore.changes())) == 1


def test_time_filters(jstore: ChunkStore) -> None:
    before = dt.datetime.now(dt.UTC)
    jstore.set_block(0, 0, 0, "stone")
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert len(list(jstore.changes(start=before))) == 1
    assert list(jstore.changes(start=after)) == []
    assert list(jstore.changes(end=before)) == []


@pytest.mark.usefixtures("session_local")
def test_orm_set_block_and_services_are_journaled(jdb: Database, jworld: uuid.UUID) -> None:
    from voxeldb import services
    from voxeldb.meta import WorldChunk

    services.set_block(jworld, 3, 1, 4, "glass", actor="character:7")
    with jdb.session() as s:
        chunk = s.get(WorldChunk, (jworld, 0, 0))
        assert chunk is not None
        chunk.set_block_at(5, 2, 5, "sand")
    changes = list(jdb.chunks(jworld).changes())
    assert [c.kind for c in changes] == ["edit", "edit"]
    assert changes[0].actor == "character:7"
    assert changes[0].blocks == (BlockEdit(3, 1, 4, AIR, {"type": "glass"}),)
    assert changes[1].blocks == (BlockEdit(5, 2, 5, AIR, {"type": "sand"}),)


def test_rollback_by_actor_with_conflicts(jdb: Database, jworld: uuid.UUID) -> None:
    griefer = jdb.chunks(jworld, actor="user:griefer")
    other = jdb.chunks(jworld, actor="user:other")
    admin = jdb.chunks(jworld, actor="admin")
    other.set_blocks([(x, 0, 0, "stone") for x in range(4)])
    griefer.set_blocks([(x, 0, 0, "tnt") for x in range(4)] + [(0, 0, 20, "tnt")])
    other.set_block(3, 0, 0, "gold")  # after the griefer: a conflict, left alone
    with pytest.raises(ValidationError):
        admin.rollback()
    preview = admin.rollback(actor="user:griefer", preview=True)
    assert preview == RollbackReport(blocks=4, chunks=2, conflicts=1)
    assert admin.get_block(0, 0, 0) == {"type": "tnt"}  # preview wrote nothing
    head = admin.head()
    report = admin.rollback(actor="user:griefer")
    assert report == preview
    assert [admin.get_block(x, 0, 0) for x in range(4)] == [{"type": "stone"}] * 3 + [
        {"type": "gold"}
    ]
    assert admin.get_block(0, 0, 20) == AIR
    undo = list(admin.changes(since=head))
    assert {c.actor for c in undo} == {"admin"} and len(undo) == 2


def test_rollback_put_and_delete(jstore: ChunkStore) -> None:
    jstore.put(0, 0, _filled(0))
    start = dt.datetime.now(dt.UTC)
    jstore.set_block(0, 0, 0, "stone")
    original = jstore.get(0, 0)
    assert original is not None
    original = original.copy()
    jstore.put(0, 0, _filled(0))  # replaces: keeps the bytes it replaced
    jstore.put(1, 0, _filled(0))  # new chunk: undone by deleting it
    jstore.delete(2, 2)  # nothing: no entry
    report = jstore.rollback(start=start, area=(0, 0, 1, 0))
    assert report.conflicts == 0
    assert jstore.get(1, 0) is None
    assert jstore.get_block(0, 0, 0) == AIR  # the edit after start undone too
    jstore.put(3, 3, original)
    cut = dt.datetime.now(dt.UTC)
    assert jstore.delete(3, 3)
    assert jstore.rollback(start=cut).chunks == 1
    restored = jstore.get(3, 3)
    assert restored is not None and np.array_equal(restored, original)


def test_watch_delivers_new_changes(jstore: ChunkStore, jdb: Database, jworld: uuid.UUID) -> None:
    jstore.set_block(0, 0, 0, "stone")
    writer = jdb.chunks(jworld, actor="w")

    def write() -> None:
        for i in range(5):
            writer.set_block(i, 1, 0, "dirt")

    seen: list[Change] = []
    feed = jstore.watch(timeout=2.0)
    thread = threading.Thread(target=write)
    thread.start()
    for change in feed:
        seen.append(change)
        if len(seen) == 5:
            break
    thread.join()
    assert [c.seq for c in seen] == [2, 3, 4, 5, 6]
    assert all(c.actor == "w" for c in seen)
    # since=0 replays everything, then stops after the timeout with nothing new.
    assert [c.seq for c in jstore.watch(0, timeout=0.2)] == list(range(1, 7))
    assert [c.seq for c in jstore.watch(0, area=(0, 0, 0, 0), timeout=0.1)] == list(range(1, 7))


def test_prune(jdb: Database, jstore: ChunkStore) -> None:
    jstore.set_block(0, 0, 0, "stone")
    jstore.set_block(0, 1, 0, "stone")
    assert jdb.prune_journal(older_than=dt.timedelta(days=1)) == 0
    assert jdb.prune_journal(older_than=dt.timedelta(0), world_id=uuid.uuid4()) == 0
    assert jdb.prune_journal(older_than=dt.timedelta(0)) == 2
    assert list(jstore.changes()) == []
    assert jstore.head() == 2  # the head stays: seqs are never reused
    jstore.set_block(0, 2, 0, "stone")
    assert [c.seq for c in jstore.changes()] == [3]


def test_postgres_journal_is_partitioned(jdb: Database, jstore: ChunkStore) -> None:
    if jdb.backend != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    jstore.set_block(0, 0, 0, "stone")
    with jdb.engine.connect() as conn:
        parts = set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'world_journal'::regclass"
                )
            ).scalars()
        )
        today = dt.datetime.now(dt.UTC).date()
        assert f"world_journal_p{today:%Y%m%d}" in parts and "world_journal_default" in parts
        where = conn.execute(
            text("SELECT tableoid::regclass::text FROM world_journal WHERE world_id = :w"),
            {"w": jstore.world_id},
        ).scalar_one()
        assert where == f"world_journal_p{today:%Y%m%d}"


def test_journal_switch_off_writes_nothing(
    jstore: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "_ENABLED", False)
    jstore.set_block(0, 0, 0, "stone")
    monkeypatch.setattr(_journal, "_ENABLED", True)
    assert jstore.head() == 0


@pytest.mark.usefixtures("session_local")
def test_undo_what_agent_did_in_the_last_hour(jdb: Database, jworld: uuid.UUID) -> None:
    from voxeldb import services
    from voxeldb.meta import AIAgentActivity, WorldEvolutionLog

    player = jdb.chunks(jworld, actor="user:bob")
    player.set_blocks([(x, 0, 0, "grass") for x in range(8)])
    agent = services.create_agent(f"builder-{uuid.uuid4().hex[:6]}")
    hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    activity = services.run_agent_activity(
        agent.agent_name,
        jworld,
        "build",
        {"what": "tower"},
        edits=[(x, 0, 0, "cobblestone") for x in range(4)]
        + [(0, y, 40, "cobblestone") for y in range(5)],
    )
    assert activity.journal_from is not None and activity.journal_to is not None
    agent_changes = list(player.changes(since=activity.journal_from))
    assert [c.seq for c in agent_changes] == list(
        range(activity.journal_from + 1, activity.journal_to + 1)
    )
    assert {c.actor for c in agent_changes} == {f"agent:{agent.id}"}
    with jdb.session() as s:
        log = s.query(WorldEvolutionLog).filter_by(agent_id=agent.id).one()
        assert (log.journal_from, log.journal_to) == (activity.journal_from, activity.journal_to)
        assert s.get(AIAgentActivity, activity.id) is not None
    player.set_block(1, 0, 0, "dirt")  # the player changed one of them since: kept

    report = jdb.chunks(jworld, actor="admin").rollback(actor=f"agent:{agent.id}", start=hour_ago)

    assert report == RollbackReport(blocks=8, chunks=2, conflicts=1)
    assert [player.get_block(x, 0, 0) for x in range(5)] == [
        {"type": "grass"},
        {"type": "dirt"},
        {"type": "grass"},
        {"type": "grass"},
        {"type": "grass"},
    ]
    assert all(player.get_block(0, y, 40) == AIR for y in range(5))


def test_big_put_many_is_staged_and_keeps_order(jstore: ChunkStore) -> None:
    jstore.set_block(0, 0, 0, "stone")
    jstore.put(0, 1, _filled(0))  # replaced below: its bytes are kept
    n = 2_500  # more than two spills of 1,024 entries
    assert jstore.put_many((i, 1, _filled(0)) for i in range(n)) == n
    assert jstore.head() == 2 + n
    changes = list(jstore.changes(since=2))
    assert [c.seq for c in changes] == list(range(3, 3 + n))
    assert [(c.cx, c.cz) for c in changes] == [(i, 1) for i in range(n)]
    assert {c.kind for c in changes} == {"put"} and changes[0].version is not None
    # Newest first: the edit goes back, after which the chunk holds what put_many wrote
    # again (same digest), so that put is undone too, to the bytes it replaced.
    jstore.set_block(0, 0, 16, "gold")
    report = jstore.rollback(area=(0, 1, 0, 1), start=changes[0].at)
    assert report == RollbackReport(blocks=1, chunks=1, conflicts=0)
    assert jstore.get_block(0, 0, 16) == AIR
