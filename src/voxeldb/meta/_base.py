"""The declarative base and the column types every model shares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData, Uuid, event, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from voxeldb._ids import as_uuid

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "JSONType",
    "TimestampMixin",
    "UUIDType",
    "as_utc",
    "utcnow",
]

# Deterministic constraint names: migrations can then drop and alter them by name on both
# backends (SQLite's batch mode needs names to find constraints at all).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL (indexable with GIN, compact, deduplicated keys)."""


class UUIDType(TypeDecorator[uuid.UUID]):
    """``sqlalchemy.Uuid`` that also accepts the string form in binds and comparisons.

    The seed passes ids around as ``str`` (``WorldChunk.world_id == world_id``); plain ``Uuid``
    only accepts ``uuid.UUID`` on SQLite. The DDL is exactly ``Uuid``'s (native ``uuid`` on
    PostgreSQL, ``CHAR(32)`` of hex digits on SQLite), as docs/schema.md agrees.
    """

    impl = Uuid
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return as_uuid(value, "id")

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        return value  # type: ignore[no-any-return]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time: SQLite hands timestamps back naive (voxeldb writes UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The one declarative base: every voxeldb table lives in ``Base.metadata``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        uuid.UUID: UUIDType(),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class TimestampMixin:
    """``created_at`` / ``updated_at``, set by the database (UTC ``now()``)."""

    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    updated_at: Mapped[datetime] = mapped_column(
        server_default=text("CURRENT_TIMESTAMP"), onupdate=func.now()
    )


@event.listens_for(Base, "attribute_instrument", propagate=True)
def _coerce_uuid_attributes(cls: type, key: str, inst: Any) -> None:
    """Turn a ``str`` assigned to a UUID column into a ``uuid.UUID`` at once.

    Without this ``Character(user_id="...")`` keeps the ``str`` in the instance until it is
    refreshed, so ``character.user_id == user.id`` would be False after the commit.
    """
    prop = getattr(inst, "property", None)
    columns = getattr(prop, "columns", None)
    if not columns or not isinstance(columns[0].type, UUIDType):
        return

    def _set(_target: Any, value: Any, _old: Any, _initiator: Any) -> Any:
        return None if value is None else as_uuid(value, key)

    event.listen(inst, "set", _set, retval=True)
