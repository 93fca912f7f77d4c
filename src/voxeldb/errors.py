"""Every exception voxeldb raises on purpose, and the one map from driver errors to them.

Each error subclasses :class:`VoxelDBError` and the built-in exception it resembles, so
callers can catch either ``voxeldb.errors.ChunkFormatError`` or a plain ``ValueError``::

    VoxelDBError (Exception)
    ├── ChunkFormatError (ValueError)        bad chunk array or encoded bytes
    ├── CoordinateError (ValueError)         block/chunk coordinate outside the world
    │   └── OutsideWorldError (+ ValidationError)   a service's ``y`` outside the world
    ├── ValidationError (ValueError)         bad input to a library function; ``field``
    │   ├── UnknownIdError (+ NotFoundError)         an id a service was given names nothing
    │   └── OutsideWorldError
    ├── ConfigurationError (ValueError)      malformed setting, URL or argument
    ├── SnapshotError (ValueError)           snapshot file missing, corrupt or unrestorable
    ├── NotFoundError (LookupError)          world, user, ... does not exist
    │   └── UnknownIdError
    ├── PermissionDeniedError (PermissionError)   the acting user (``as_user=``) may not do that
    ├── ConcurrencyError (RuntimeError)      a write kept conflicting past the retry budget
    ├── TransferError (RuntimeError)         a database migration was refused
    └── DatabaseUnavailableError (ConnectionError)   the database could not be reached

Driver (DBAPI / SQLAlchemy) errors become these in one place, :func:`driver_errors`. This
module imports nothing heavy: SQLAlchemy is looked at only once an error has happened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

__all__ = [
    "ChunkFormatError",
    "ConcurrencyError",
    "ConfigurationError",
    "CoordinateError",
    "DatabaseUnavailableError",
    "NotFoundError",
    "OutsideWorldError",
    "PermissionDeniedError",
    "SnapshotError",
    "TransferError",
    "UnknownIdError",
    "ValidationError",
    "VoxelDBError",
    "driver_errors",
    "is_transient",
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


class UnknownIdError(NotFoundError, ValidationError):
    """An id given to a service names nothing: both a NotFoundError and a ValidationError.

    ``field`` says which argument it was, as for every ValidationError.
    """


class PermissionDeniedError(VoxelDBError, PermissionError):
    """The acting user a service was given (``as_user=``) may not change that character,
    story or world (``voxeldb.services.check_user_permission`` is the rule)."""


class OutsideWorldError(CoordinateError, ValidationError):
    """``y`` outside the world: a CoordinateError like the chunk store's, and (as for any
    bad service input) a ValidationError naming the field."""


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


# --- driver errors ------------------------------------------------------------------------

DriverErrorKind = Literal["transient", "disconnect", "foreign_key"]
"""``transient``: deadlock, serialization failure, busy (retry the transaction);
``disconnect``: the connection is gone; ``foreign_key``: a foreign-key violation."""

Classifier = Callable[[BaseException], "DriverErrorKind | None"]


def classify_driver_error(exc: BaseException) -> DriverErrorKind | None:
    """What any backend can tell from SQLAlchemy alone: an invalidated connection, or an
    ``OperationalError``/``InterfaceError`` (the server or file cannot be reached)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "disconnect"
    if isinstance(exc, OperationalError | InterfaceError):
        return "disconnect"
    return None


_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03"})
"""PostgreSQL: serialization failure, deadlock detected, lock not available."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, wrapped by SQLAlchemy or not) lost a race that running
    the transaction again can win: a deadlock, a serialization failure, a busy SQLite."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if getattr(orig, "sqlstate", None) in _TRANSIENT_STATES:
        return True
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return "locked" in message or "busy" in message
    return False


def driver_reason(exc: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` of the driver's own exception under a SQLAlchemy wrapper."""
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(orig).__name__}: {str(orig).strip()}"[:limit]


@contextlib.contextmanager
def driver_errors(
    classify: Classifier = classify_driver_error,
    *,
    unavailable: str = "lost the connection to the database",
    foreign_key: str | None = None,
    otherwise: Callable[[str], VoxelDBError] | None = None,
    on_disconnect: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Turn the driver errors raised inside the block into voxeldb errors.

    ``classify`` (a backend's, else :func:`classify_driver_error`) names the kind:
    ``disconnect`` becomes :class:`DatabaseUnavailableError` ("``unavailable`` (reason)"),
    after ``on_disconnect()`` (e.g. invalidating the connection); ``foreign_key`` becomes a
    :class:`NotFoundError` saying ``foreign_key`` when that is given. Any other SQLAlchemy
    error becomes ``otherwise(reason)`` when that is given. Everything else, transient
    errors included (the retry policy wants them as they are), passes through unchanged.
    """
    try:
        yield
    except VoxelDBError:
        raise
    except Exception as exc:
        kind = classify(exc)
        if kind == "disconnect":
            if on_disconnect is not None:
                with contextlib.suppress(Exception):
                    on_disconnect()
            raise DatabaseUnavailableError(f"{unavailable} ({driver_reason(exc, 450)})") from exc
        if kind == "foreign_key" and foreign_key is not None:
            raise NotFoundError(foreign_key) from exc
        if otherwise is not None and kind is None:
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                raise otherwise(driver_reason(exc)) from exc
        raise
