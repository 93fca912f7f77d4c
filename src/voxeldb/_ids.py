"""Parsing the ids callers pass around: a UUID, or its string form."""

from __future__ import annotations

import uuid

from voxeldb.errors import ValidationError

__all__ = ["as_uuid"]


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
