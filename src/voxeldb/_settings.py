"""The one settings object: environment variables, then a ``.env`` file in the working directory."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxeldb.errors import ConfigurationError

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
    """Read the settings afresh (environment and ``.env``), with explicit overrides on top.

    A malformed value is a :class:`~voxeldb.errors.ConfigurationError` naming the variable
    (or the override) and what it accepts, e.g. ``VOXELDB_BCRYPT_ROUNDS='abc' is not valid:
    expected an integer from 4 to 31``.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except PydanticValidationError as exc:
        raise ConfigurationError(_describe(exc, overrides)) from None


def _describe(exc: PydanticValidationError, overrides: dict[str, object]) -> str:
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        name, field = _field(key)
        if key in overrides or (field is not None and name in overrides):
            where = name
        elif field is not None and isinstance(field.validation_alias, str):
            where = field.validation_alias
        else:
            where = f"VOXELDB_{name.upper()}"
        allowed = _allowed(field) if field is not None else None
        detail = f"expected {allowed}" if allowed else str(error["msg"])
        problems.append(f"{where}={error.get('input')!r} is not valid: {detail}")
    return "; ".join(problems)


def _field(key: str) -> tuple[str, FieldInfo | None]:
    """The setting named ``key`` (a field name or an alias such as ``DATABASE_URL``)."""
    for name, field in Settings.model_fields.items():
        if key in (name, field.validation_alias):
            return name, field
    return key, None


def _allowed(field: FieldInfo) -> str | None:
    """What ``field`` accepts, in words: ``an integer from 4 to 31``, ``'a' or 'b'``."""
    annotation: Any = field.annotation
    if get_origin(annotation) is Literal:
        choices = [repr(c) for c in get_args(annotation)]
        return ", ".join(choices[:-1]) + " or " + choices[-1]
    if annotation is bool:
        return "true or false"
    kind = {int: "an integer", float: "a number"}.get(annotation)
    if kind is None:
        return None
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(item, attr, None) is not None:
                bounds[attr] = getattr(item, attr)
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']} to {bounds['le']}"
    words = []
    if "ge" in bounds:
        words.append(f"of at least {bounds['ge']}")
    if "gt" in bounds:
        words.append(f"greater than {bounds['gt']}")
    if "le" in bounds:
        words.append(f"of at most {bounds['le']}")
    if "lt" in bounds:
        words.append(f"less than {bounds['lt']}")
    return " ".join([kind, *words])
