"""``voxeldb migrate``: a whole database between SQLite and PostgreSQL, resumable for chunks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tests._services import temporary_database
from tests.cli.test_cli import assert_one_line_error, voxeldb_cmd
from tests.ops._worlds import build_world
from voxeldb._engine import make_engine
from voxeldb.errors import TransferError
from voxeldb.meta import Base, current, upgrade
from voxeldb.ops import transfer_database


def _other(backend: str) -> str:
    return "postgresql" if backend == "sqlite" else "sqlite"


def _normalize(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order, values normalized across backends."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(_normalize(v) for v in row) for row in rows]
    return out


@pytest.fixture
def source(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    build_world(eng, size=4)
    yield eng
    eng.dispose()


def test_migrate_command_copies_everything_and_refuses_a_second_run(
    database_url: str, backend: str, source: Engine
) -> None:
    with temporary_database(_other(backend)) as target_url:
        proc = voxeldb_cmd("migrate", "--from", database_url, "--to", target_url)
        assert proc.returncode == 0, proc.stderr
        assert "Copied" in proc.stdout and "(17 chunks)" in proc.stdout
        target = make_engine(target_url)
        try:
            assert current(target) == current(source)
            expected = dump(source)
            assert dump(target) == expected
            assert len(expected["world_chunks"]) == 17 and len(expected["users"]) == 2

            again = voxeldb_cmd("migrate", "--from", database_url, "--to", target_url)
            assert_one_line_error(again, "already holds data", "--resume")
            resumed = voxeldb_cmd("migrate", "--from", database_url, "--to", target_url, "--resume")
            assert resumed.returncode == 0, resumed.stderr
            assert "Copied 0 rows" in resumed.stdout
            assert dump(target) == expected
        finally:
            target.dispose()


class _CrashAfter:
    """A progress watcher that 'crashes' the migration after some chunk batches."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.seen: dict[str, int] = {}

    def table_started(self, table: str, total: int, done: int) -> None:
        self.seen[table] = done

    def advanced(self, table: str, rows: int) -> None:
        self.seen[table] += rows
        if table == "world_chunks" and self.seen[table] >= self.chunks:
            raise KeyboardInterrupt("power cut")

    def table_finished(self, table: str, copied: int, skipped: bool) -> None:
        pass


def test_interrupted_migration_resumes_where_it_stopped(backend: str, source: Engine) -> None:
    with temporary_database(_other(backend)) as target_url:
        target = make_engine(target_url)
        try:
            crash = _CrashAfter(6)
            with pytest.raises(KeyboardInterrupt):
                transfer_database(source, target, Base.metadata, progress=crash, chunk_batch=3)
            partial = dump(target)
            # Tables before world_chunks are complete, the chunks a committed prefix.
            assert len(partial["worlds"]) == 2
            copied_before = crash.seen["world_chunks"]
            assert 6 <= copied_before < 17
            assert len(partial["world_chunks"]) == copied_before
            with pytest.raises(TransferError, match="already holds data"):
                transfer_database(source, target, Base.metadata)
            watcher = _CrashAfter(10**9)
            report = transfer_database(
                source, target, Base.metadata, resume=True, progress=watcher, chunk_batch=3
            )
            assert report.copied["world_chunks"] == 17 - copied_before
            assert "worlds" in report.skipped and "users" in report.skipped
            assert dump(target) == dump(source)
        finally:
            target.dispose()


def test_migrate_refuses_bad_sources(tmp_path: Any) -> None:
    with temporary_database("sqlite") as empty, temporary_database("postgresql") as target:
        blank = make_engine(empty)
        with blank.connect():
            pass  # an existing database file without the schema
        blank.dispose()
        proc = voxeldb_cmd("migrate", "--from", empty, "--to", target)
        assert_one_line_error(proc, "has no voxeldb schema")
        same = voxeldb_cmd("migrate", "--from", target, "--to", target)
        assert_one_line_error(same, "same database")


def test_migrate_from_a_missing_sqlite_file_creates_nothing(tmp_path: Any) -> None:
    missing = tmp_path / "typo.sqlite3"
    proc = voxeldb_cmd(
        "migrate", "--from", f"sqlite:///{missing}", "--to", f"sqlite:///{tmp_path / 'to.db'}"
    )
    assert_one_line_error(proc, "--from", "does not exist")
    assert not missing.exists()  # connecting would have created an empty file


def _journal(url: str, world_ids: list[Any]) -> dict[Any, tuple[int, list[Any]]]:
    import voxeldb

    with voxeldb.connect(url, cache="memory") as db:
        return {w: (db.chunks(w).head(), list(db.chunks(w).changes())) for w in world_ids}


def test_migrate_copies_the_journal_both_ways(database_url: str, backend: str) -> None:
    """SQLite -> PostgreSQL and back (or the other way round): every change, seq and head kept,
    and the target's next change continues the numbering."""
    import voxeldb

    source = make_engine(database_url)
    upgrade(source)
    built = build_world(source, size=3)
    source.dispose()
    with voxeldb.connect(database_url, cache="memory") as db:
        a = db.chunks(built.world_id, actor="user:alice")
        a.set_blocks([(1, 2, 3, "stone"), (17, 2, 3, {"type": "oak_log", "axis": "z"})])
        db.chunks(built.other_world_id, actor="agent:7").set_block(100, 5, 100, "gold_block")
        a.delete(2, 2)
        a.set_block(1, 2, 3, "glass")
    worlds = [built.world_id, built.other_world_id]
    before = _journal(database_url, worlds)
    assert before[built.world_id][0] >= 3 and before[built.other_world_id][0] >= 1

    with (
        temporary_database(_other(backend)) as there_url,
        temporary_database(backend) as back_url,
    ):
        for src, dst in ((database_url, there_url), (there_url, back_url)):
            proc = voxeldb_cmd("migrate", "--from", src, "--to", dst)
            assert proc.returncode == 0, proc.stderr
            assert _journal(dst, worlds) == before
            if dst.startswith("postgresql"):
                # Each entry went through the parent into its day's partition.
                eng = make_engine(dst)
                try:
                    with eng.connect() as conn:
                        stray = conn.execute(text("SELECT count(*) FROM world_journal_default"))
                        assert stray.scalar_one() == 0
                finally:
                    eng.dispose()
        back = make_engine(back_url)
        try:
            original = make_engine(database_url)
            try:
                assert dump(back) == dump(original)
            finally:
                original.dispose()
        finally:
            back.dispose()
        with voxeldb.connect(there_url, cache="memory") as db:
            store = db.chunks(built.world_id, actor="after")
            store.set_block(1, 2, 3, "dirt")
            (change,) = list(store.changes(before[built.world_id][0]))
            assert change.seq > before[built.world_id][0] and change.actor == "after"
            report = store.rollback(actor="user:alice", preview=True)
            assert report.conflicts >= 1  # history from before the move still rolls back
