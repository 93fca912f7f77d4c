"""The ``ChunkStoreTests`` contract, run for every backend x cache tier."""

from __future__ import annotations

from tests.chunks.store_contract import ChunkStoreTests


class TestSQLite(ChunkStoreTests):
    backend_name = "sqlite"
    cache_tier = "memory"


class TestSQLiteWithRedis(ChunkStoreTests):
    backend_name = "sqlite"
    cache_tier = "redis"


class TestPostgreSQL(ChunkStoreTests):
    backend_name = "postgresql"
    cache_tier = "memory"


class TestPostgreSQLWithRedis(ChunkStoreTests):
    backend_name = "postgresql"
    cache_tier = "redis"
