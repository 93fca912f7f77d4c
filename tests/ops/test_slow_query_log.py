"""The slow-query log of voxeldb._engine: slow statements warn, fast ones stay quiet."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from sqlalchemy import event, text

from voxeldb._engine import make_engine
from voxeldb._settings import get_settings


def _sleep_sql(engine: Any, backend: str, seconds: float) -> str:
    if backend == "postgresql":
        return f"SELECT pg_sleep({seconds})"
    # SQLite has no sleep: give it one, so the same statement shape is timed on both backends.

    @event.listens_for(engine, "connect")
    def _add_sleep(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.create_function("sleep", 1, lambda s: time.sleep(s) or 0)

    return f"SELECT sleep({seconds})"


def test_slow_statement_logs_a_warning_and_fast_one_does_not(
    database_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(database_url, get_settings(slow_query_ms=100, echo_sql=False))
    try:
        slow_sql = _sleep_sql(engine, backend, 0.15)
        with caplog.at_level(logging.WARNING, logger="voxeldb.slow_query"):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            fast = [r for r in caplog.records if r.name == "voxeldb.slow_query"]
            assert fast == []
            with engine.connect() as conn:
                conn.execute(text(slow_sql))
        slow = [r for r in caplog.records if r.name == "voxeldb.slow_query"]
        assert len(slow) == 1
        assert slow[0].levelno == logging.WARNING
        message = slow[0].getMessage()
        assert "Slow query" in message and "sleep(0.15)" in message
        elapsed_ms = float(message.split(":", 1)[1].split("ms", 1)[0])
        assert elapsed_ms >= 150
    finally:
        engine.dispose()


def test_threshold_comes_from_the_setting(
    database_url: str, backend: str, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    monkeypatch.setenv("VOXELDB_SLOW_QUERY_MS", "1000")
    engine = make_engine(database_url)
    try:
        slow_sql = _sleep_sql(engine, backend, 0.15)
        with caplog.at_level(logging.WARNING, logger="voxeldb.slow_query"):
            with engine.connect() as conn:
                conn.execute(text(slow_sql))
        assert [r for r in caplog.records if r.name == "voxeldb.slow_query"] == []
    finally:
        engine.dispose()
