"""Ids and versions: parsing the UUIDs callers pass around, and fresh chunk versions."""

from __future__ import annotations

import time
import uuid

from voxeldb.errors import ValidationError

__all__ = ["as_uuid", "fresh_version"]


def as_uuid(value: object, field: str = "world_id") -> uuid.UUID:
    """``value`` as a UUID; anything that is not a UUID or its string form is a ValidationError."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ValidationError(f"{field} {value!r} is not a valid UUID", field=field) from None
    raise ValidationError(
        f"{field} must be a UUID or its string form, got {type(value).__name__}", field=field
    )


def fresh_version() -> int:
    """A first version for a chunk row that no earlier row of that chunk can have held.

    Caches are tagged by version, so a chunk deleted and written again (or restored from a
    snapshot) must not start at a version an old cache entry still holds: the microsecond
    clock is past every version handed out before (PostgreSQL's store rows start at
    ``xid * 1024``, far below it).
    """
    return time.time_ns() // 1000
