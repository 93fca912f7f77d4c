"""Migrations: the models and the migrated database agree; up, down and up again work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from voxeldb._engine import make_engine
from voxeldb.meta import Base, current, downgrade, pending_changes, script_location, upgrade

ROOT = Path(__file__).resolve().parents[2]


def test_models_match_migrated_database(engine: Engine) -> None:
    # The `alembic check` of this project: autogenerate finds nothing to do.
    assert pending_changes(engine) == []


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    head = current(engine)
    assert head is not None
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    downgrade(engine, "base")
    assert current(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current(engine) == head
    assert pending_changes(engine) == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    head = current(engine)
    upgrade(engine)
    assert current(engine) == head


def test_backend_specific_parts(engine: Engine) -> None:
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("stories")}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            storage = conn.execute(
                text(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'world_chunks'::regclass AND attname = 'data'"
                )
            ).scalar_one()
            assert storage == "e"  # EXTERNAL: no second compression of LZ4 data
            assert {"ix_stories_branching_data", "ix_stories_narrative_threads"} <= indexes
            kinds = conn.execute(
                text(
                    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                    "WHERE c.relname = 'ix_stories_narrative_threads'"
                )
            ).scalar_one()
            assert kinds == "gin"
        else:
            assert "ix_stories_narrative_threads" not in indexes
            fk = conn.execute(text("PRAGMA foreign_keys")).scalar_one()
            assert fk == 1  # the migration turned them off for itself only


def test_schema_doc_names(engine: Engine) -> None:
    insp = inspect(engine)
    pk = insp.get_pk_constraint("world_chunks")
    assert pk["name"] == "pk_world_chunks"
    assert pk["constrained_columns"] == ["world_id", "chunk_x", "chunk_z"]
    uniques = {u["name"] for u in insp.get_unique_constraints("block_states")}
    assert "uq_block_states_world_id_state_key" in uniques
    cols = {c["name"]: c for c in insp.get_columns("world_chunks")}
    assert str(cols["chunk_y"]["default"]).strip("'()") == "0"
    assert str(cols["version"]["default"]).strip("'()") == "1"


def test_scripts_ship_inside_the_package() -> None:
    location = Path(script_location())
    assert (location / "env.py").is_file()
    assert list((location / "versions").glob("*.py"))
    assert not (ROOT / "alembic" / "__init__.py").exists()


def test_alembic_command_line(empty_database_url: str) -> None:
    env = {"DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    eng = make_engine(empty_database_url)
    try:
        assert current(eng) is not None
        assert pending_changes(eng) == []
    finally:
        eng.dispose()
