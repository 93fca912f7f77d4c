"""Every exception voxeldb raises on purpose.

Each error subclasses :class:`VoxelDBError` and the built-in exception it resembles, so
callers can catch either ``voxeldb.errors.ChunkFormatError`` or a plain ``ValueError``.
"""

from __future__ import annotations

__all__ = [
    "ChunkFormatError",
    "ConcurrencyError",
    "ConfigurationError",
    "CoordinateError",
    "DatabaseUnavailableError",
    "NotFoundError",
    "SnapshotError",
    "TransferError",
    "ValidationError",
    "VoxelDBError",
]


class VoxelDBError(Exception):
    """Base class of every voxeldb error."""


class ChunkFormatError(VoxelDBError, ValueError):
    """A chunk array cannot be encoded, or a byte string is not a valid encoded chunk."""


class CoordinateError(VoxelDBError, ValueError):
    """A block or chunk coordinate is outside the world (the message gives the valid range)."""


class ValidationError(VoxelDBError, ValueError):
    """Input to a library function is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(VoxelDBError, LookupError):
    """A world, user, character or other object that was asked for does not exist."""


class ConfigurationError(VoxelDBError, ValueError):
    """A setting (environment, ``.env`` or argument) is malformed."""


class ConcurrencyError(VoxelDBError, RuntimeError):
    """A write kept conflicting with concurrent writers past the retry budget."""


class DatabaseUnavailableError(VoxelDBError, ConnectionError):
    """The database could not be reached."""


class SnapshotError(VoxelDBError, ValueError):
    """A snapshot file is missing, corrupt, or cannot be restored as asked."""


class TransferError(VoxelDBError, RuntimeError):
    """A database migration was refused or found the target in a state it cannot continue from."""
