"""Fixtures for the metadata tests: a migrated database per test, SessionLocal pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from voxeldb._engine import make_engine
from voxeldb._migrations import upgrade
from voxeldb.meta import SessionLocal, configure


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library default (12) is asserted elsewhere; cost 4 keeps each hash ~1 ms here.
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "4")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head."""
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session_local(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """``voxeldb.meta.SessionLocal``, bound to this test's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    configure(database_url)
    yield SessionLocal
    configure(None)
