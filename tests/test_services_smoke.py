"""The shared services the suite depends on are reachable (the test command starts them)."""

from __future__ import annotations

import psycopg
import redis

from tests._services import PG_ADMIN_DSN, REDIS_TEST_URL, temporary_postgres_database


def test_postgres_reachable_and_databases_are_private() -> None:
    with temporary_postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_DSN) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert row == (1,)
    with psycopg.connect(PG_ADMIN_DSN) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


def test_redis_reachable(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.set(f"{redis_prefix}:k", b"v")
    assert client.get(f"{redis_prefix}:k") == b"v"
