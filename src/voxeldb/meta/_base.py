"""The declarative base; the column types every model shares come from ``voxeldb.chunks``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, event, func, text
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from voxeldb._ids import as_uuid
from voxeldb.chunks import NAMING_CONVENTION, JSONType, UUIDType
from voxeldb.chunks import metadata as _metadata

__all__ = [
    "EMPTY_JSON",
    "NAMING_CONVENTION",
    "Base",
    "JSONType",
    "MutableJSON",
    "TimestampMixin",
    "UUIDType",
    "uuid_pk",
]


MutableJSON: Any = MutableDict.as_mutable(JSONType)
"""The type of every ``dict[str, Any]`` column: in-place changes (``character.position["x"] =
500``) mark the attribute changed, so the next flush writes them. Only top-level keys are
tracked: replace a nested dict (or call ``flag_modified``) to change inside it."""


class Base(DeclarativeBase):
    """The one declarative base: every voxeldb table lives in ``Base.metadata``.

    That is ``voxeldb.chunks.metadata``: the two tables the chunk store shares with the ORM
    (``world_chunks``, ``block_states``) are defined there, once, and mapped in ``_worlds``.
    """

    metadata = _metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        uuid.UUID: UUIDType(),
        datetime: DateTime(timezone=True),
        dict[str, Any]: MutableJSON,
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


# Raw INSERTs (the chunk store, COPY, hand-written SQL) can leave JSON columns out.
EMPTY_JSON = text("'{}'")


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)
