"""Ids and versions: parsing the UUIDs callers pass around, and fresh chunk versions."""

from __future__ import annotations

import secrets
import uuid

from voxeldb.errors import ValidationError

__all__ = ["VERSION_FLOOR", "as_uuid", "fresh_version", "fresh_versions"]


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


VERSION_FLOOR = 1 << 62
"""Every version voxeldb writes is in ``[2**62, 2**63)``: above every version the earlier
schemes handed out (``xid * 1024``, the microsecond clock, the column default 1)."""


def fresh_version() -> int:
    """A new version for a chunk row: 62 random bits (``secrets``) above :data:`VERSION_FLOOR`.

    Caches are tagged by version and trust an entry whose version matches the row's, so a
    version must never come back with other contents -- not after a delete and a new write,
    not after the database is restored from a backup and edited again, not in another
    database. A counter (``version + 1``) or a clock repeats in those cases; a random version
    repeats only by chance, about once in 2**62 writes of one chunk (docs/storage.md).
    """
    return VERSION_FLOOR | secrets.randbits(62)


def fresh_versions(n: int) -> list[int]:
    """``n`` fresh versions (:func:`fresh_version`), one per row written."""
    return [VERSION_FLOOR | secrets.randbits(62) for _ in range(n)]
