"""``voxeldb.connect`` (CONTRACT §3): URLs and caches from arguments, environment and .env."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

import voxeldb
from tests._services import REDIS_TEST_URL, free_port
from voxeldb import Database
from voxeldb.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    ValidationError,
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DATABASE_URL / REDIS_URL in the environment, and an empty working directory."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_is_the_embedded_sqlite_file(clean_env: Path) -> None:
    with voxeldb.connect() as db:
        assert db.backend == "sqlite"
        assert db.redis is None
        db.create_schema()
        wid = db.create_world("embedded")
        db.chunks(wid).set_block(0, 0, 0, "stone")
    assert (clean_env / "voxeldb.sqlite3").exists()
    with voxeldb.connect() as again:
        assert again.chunks(wid).get_block(0, 0, 0) == {"type": "stone"}


def test_url_from_the_environment_then_dotenv(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    (clean_env / ".env").write_text(f"DATABASE_URL={database_url}\nREDIS_URL={REDIS_TEST_URL}\n")
    with voxeldb.connect() as db:
        assert db.engine.url.render_as_string(hide_password=False) == database_url
        assert db.redis is not None
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{clean_env / 'from-env.sqlite3'}")
    with voxeldb.connect() as db:
        assert db.engine.url.database == str(clean_env / "from-env.sqlite3")
    with voxeldb.connect(database_url, cache="memory") as db:
        assert db.backend in ("sqlite", "postgresql") and db.redis is None


def test_cache_argument(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{clean_env / 'c.sqlite3'}"
    with voxeldb.connect(url) as db:
        assert db.redis is None  # no REDIS_URL: in-process cache only
        assert db.lru.max_bytes > 0
    monkeypatch.setenv("REDIS_URL", REDIS_TEST_URL)
    with voxeldb.connect(url) as db:
        assert db.redis is not None
    with voxeldb.connect(url, cache="memory") as db:
        assert db.redis is None  # refuses Redis even though REDIS_URL is set
    with voxeldb.connect(url, cache=REDIS_TEST_URL) as db:
        assert db.redis is not None
    monkeypatch.setenv("VOXELDB_CACHE_BYTES", "12345")
    with voxeldb.connect(url, cache="memory") as db:
        assert db.lru.max_bytes == 12345
    with pytest.raises(ConfigurationError, match="Redis URL"):
        voxeldb.connect(url, cache="mem")
    with pytest.raises(ConfigurationError, match="Redis URL"):
        voxeldb.connect(url, cache="redis://:::bad")
    with pytest.raises(ConfigurationError, match="unsupported database"):
        voxeldb.connect("mysql://u@h/db")


def test_session_commits_on_success_and_rolls_back_on_error(database_url: str) -> None:
    from voxeldb.meta import World

    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        with db.session() as s:
            s.add(World(name="kept", world_settings={}))
        with pytest.raises(RuntimeError), db.session() as s:
            s.add(World(name="dropped", world_settings={}))
            s.flush()
            raise RuntimeError("boom")
        with db.session() as s:
            names = set(s.scalars(text("SELECT name FROM worlds")))
        assert names == {"kept"}


def test_chunks_needs_an_existing_world(database_url: str) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        with pytest.raises(NotFoundError):
            db.chunks(uuid.uuid4())
        with pytest.raises(ValidationError):
            db.chunks(12345)  # type: ignore[arg-type]
        wid = db.create_world("w", {"height": 48, "min_y": 0})
        store = db.chunks(wid)
        assert isinstance(store, voxeldb.ChunkStore)
        assert (store.height, store.min_y) == (48, 0)
        with pytest.raises(ValidationError):
            db.create_world("bad", {"height": 50})


def test_chunks_before_create_schema_says_so(clean_env: Path) -> None:
    with (
        voxeldb.connect(f"sqlite:///{clean_env / 'empty.sqlite3'}") as db,
        pytest.raises(NotFoundError, match="create_schema"),
    ):
        db.chunks(uuid.uuid4())


def test_close_is_idempotent_and_a_context_manager(clean_env: Path) -> None:
    db = Database(f"sqlite:///{clean_env / 'x.sqlite3'}")
    with db as entered:
        assert entered is db
    db.close()
    assert "sqlite" in repr(db)


def test_chunks_with_the_database_down_is_unavailable_not_not_found(clean_env: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    with voxeldb.connect(url, cache="memory") as db:
        with pytest.raises(DatabaseUnavailableError, match="cannot connect") as info:
            db.chunks(uuid.uuid4())
        assert isinstance(info.value, ConnectionError)
        assert not isinstance(info.value, NotFoundError)
