"""The one settings object: environment variables, then a ``.env`` file in the working directory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///voxeldb.sqlite3"


class Settings(BaseSettings):
    """voxeldb's configuration.

    ``DATABASE_URL`` and ``REDIS_URL`` are read as they are (as in the seed's ``.env``);
    every other setting is ``VOXELDB_<NAME>``.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_prefix="VOXELDB_",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")

    # Cache
    cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    """Upper bound of the in-process LRU of decoded chunks, in bytes."""
    redis_mode: Literal["encoded", "decoded"] = "encoded"
    """What the Redis tier holds: the codec's bytes or raw decoded arrays."""
    redis_key_prefix: str = "voxeldb"
    redis_ttl_seconds: int = Field(default=3600, ge=0)
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_retry_seconds: float = Field(default=5.0, ge=0)
    """After a Redis failure, how long to serve from the database before trying Redis again."""

    # Database
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=20, ge=0)
    pool_recycle_seconds: int = Field(default=3600, ge=1)
    echo_sql: bool = False
    slow_query_ms: float = Field(default=100.0, ge=0)

    # Auth
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    session_idle_minutes: int = Field(default=60 * 24, ge=1)
    session_absolute_hours: int = Field(default=24 * 30, ge=1)


def get_settings(**overrides: object) -> Settings:
    """Read the settings afresh (environment and ``.env``), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
