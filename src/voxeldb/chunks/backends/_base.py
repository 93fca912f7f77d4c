"""The backend interface: the SQL a :class:`~voxeldb.chunks.ChunkStore` needs from a database.

A backend serves one world's rows of ``world_chunks`` (``voxeldb.chunks._schema``). Writes
take an open SQLAlchemy ``Connection`` from :meth:`Backend.write`, with driver errors mapped
by ``voxeldb.errors.driver_errors`` (using the backend's :meth:`~Backend.classify`) and
transient write conflicts retried by the one retry policy (``voxeldb._retry``). The store's
reads run through :meth:`Backend.read`, one statement each (:meth:`~Backend.rows`), on the
backend's cheapest read-only connection; :meth:`Backend.read_connection` is for the others.

Versions: every row written gets a fresh random version (``voxeldb._ids.fresh_version``), so
a version never comes back with other contents and version-tagged caches stay coherent.
"""

from __future__ import annotations

import abc
import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from voxeldb._retry import retry
from voxeldb.chunks._geometry import Key, Rect, Row, VersionRow
from voxeldb.chunks._registry import clear_memo
from voxeldb.errors import DriverErrorKind, driver_errors

__all__ = ["Backend", "EditRow", "Known", "NewRow", "ReadRow"]

_T = TypeVar("_T")

NewRow = tuple[int, int, bytes, bytes]
"""``(cx, cz, data, summary)`` to write: ``summary`` is ``voxeldb._summary.summarize``
of the same array, which the backend seals with the row's new version."""

ReadRow = tuple[int, int, int, bytes | None]
"""``(cx, cz, version, data)`` read by :meth:`Backend.rows`; ``data`` is None where the
caller already holds that version."""

EditRow = tuple[int, int, int, bytes | None, bytes | None]
"""``(cx, cz, version, data, summary)`` locked by :meth:`Backend.lock_for_edit`: ``data`` is
None where the caller holds that version; ``summary`` as stored (sealed, see
``_summary.open_summary``)."""

Known = Mapping[Key, int]
"""The versions a reader holds (its caches), by key: their data is not sent again."""


class Backend(abc.ABC):
    """One world's chunk rows in one database; subclasses supply the SQL."""

    name: str = ""
    """The SQLAlchemy dialect name it serves (its key in the backend registry)."""

    def __init__(self, engine: Engine, world_id: uuid.UUID) -> None:
        self.engine = engine
        self.world_id = world_id

    # ------------------------------------------------------------------ reads

    @abc.abstractmethod
    def versions(self, conn: Any, rects: Sequence[Rect]) -> list[VersionRow]:
        """``(cx, cz, version)`` of the stored chunks in the union of disjoint ``rects``,
        sorted by ``(cx, cz)``, in one round trip (``conn``: a Connection or a read handle)."""

    @abc.abstractmethod
    def data(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        """The rows of ``keys`` (absent ones are left out), in one round trip."""

    @abc.abstractmethod
    def rows(
        self, handle: Any, rects: Sequence[Rect] | None, keys: Sequence[Key], known: Known
    ) -> list[ReadRow]:
        """The stored chunks of the disjoint ``rects`` (or, when ``rects`` is None, of
        ``keys``) as :data:`ReadRow`, in one round trip: version and data together, the data
        left out (None) where the version is ``known[key]``. ``handle`` is what
        :meth:`read` hands its work."""

    # ------------------------------------------------------------------ writes

    @abc.abstractmethod
    def connect_for_write(self) -> Connection:
        """A new connection whose transactions are write transactions (SQLite: IMMEDIATE)."""

    @abc.abstractmethod
    def upsert(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        """Insert or replace rows (distinct keys); the new version of each."""

    @abc.abstractmethod
    def bulk_upsert(
        self, conn: Connection, rows: Sequence[NewRow]
    ) -> dict[Key, tuple[int, bytes | None]]:
        """:meth:`upsert` for a large batch of distinct keys, by the backend's fastest path;
        each key's new version and the bytes it replaced (None for a new chunk)."""

    @abc.abstractmethod
    def lock(self, conn: Connection, keys: Sequence[Key]) -> list[Row]:
        """The rows of ``keys``, locked against other writers until the transaction ends."""

    @abc.abstractmethod
    def lock_for_edit(self, conn: Connection, keys: Sequence[Key], known: Known) -> list[EditRow]:
        """:meth:`lock` for ``set_blocks``: the rows of ``keys`` locked, in ``(cx, cz)``
        order, as :data:`EditRow` (the data left out where ``known`` holds that version)."""

    @abc.abstractmethod
    def insert_new(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        """Insert the rows whose key is free; the versions of those inserted (others skipped)."""

    @abc.abstractmethod
    def update(self, conn: Connection, rows: Sequence[NewRow]) -> dict[Key, int]:
        """Replace the data of existing (locked) rows, each with a fresh version; those versions."""

    @abc.abstractmethod
    def delete(self, conn: Connection, cx: int, cz: int) -> bytes | None:
        """Delete one row; its bytes (the journal keeps them), None when it did not exist."""

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> DriverErrorKind | None:
        """``"transient"`` (deadlock, serialization failure, busy: retry the transaction),
        ``"disconnect"`` (the connection is gone), ``"foreign_key"`` (a foreign-key
        violation: the only foreign keys written here point at the world) or None."""

    # ------------------------------------------------------------------ transactions

    def read(self, work: Callable[[Any], _T]) -> _T:
        """``work(handle)`` on a read-only connection (the handle :meth:`rows` takes).

        A connection that was idle in a pool may have died meanwhile (a restarted server, a
        dropped link) without anyone noticing: ``work`` then runs once more on a new one,
        which is safe because it only reads. A second loss is a DatabaseUnavailableError.
        """
        fresh = False
        while True:
            try:
                handle, reused, lease = self._acquire_read(fresh)
            except Exception:
                with driver_errors(self.classify):
                    raise
            try:
                return work(handle)
            except Exception as exc:
                if not reused or fresh or self.classify(exc) != "disconnect":
                    with driver_errors(self.classify):
                        raise
                fresh = True
            finally:
                self._release_read(lease)

    def _acquire_read(self, fresh: bool) -> tuple[Any, bool, Any]:
        """``(handle, reused, lease)`` for :meth:`read`: by default the driver connection of
        the engine's pool (``reused`` False: that pool checks its connections itself)."""
        conn = self.engine.raw_connection()
        return conn.driver_connection, False, conn

    def _release_read(self, lease: Any) -> None:
        lease.close()

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A pooled connection; a lost server is a DatabaseUnavailableError."""
        with driver_errors(self.classify):
            conn = self.engine.connect()
        try:
            with driver_errors(self.classify, on_disconnect=conn.invalidate):
                yield conn
        finally:
            conn.close()

    def write_once(self, work: Callable[[Connection], _T]) -> _T:
        """``work(conn)`` in one write transaction: committed on success, else rolled back."""
        with driver_errors(self.classify):
            conn = self.connect_for_write()
        try:
            with driver_errors(
                self.classify,
                on_disconnect=conn.invalidate,
                foreign_key=(
                    f"world {self.world_id} does not exist (deleted while its store was open?)"
                ),
            ):
                return _transaction(conn, work)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def write(self, work: Callable[[Connection], _T]) -> _T:
        """:meth:`write_once`, again after deadlocks and busy errors (``work`` is replayed)."""
        return retry(
            lambda: self.write_once(work),
            transient=lambda exc: self.classify(exc) == "transient",
            what="a chunk write",
        )


def _transaction(conn: Connection, work: Callable[[Connection], _T]) -> _T:
    trans = conn.begin()
    try:
        result = work(conn)
    except BaseException:
        # On a dead connection the rollback itself fails: the original error counts.
        with contextlib.suppress(Exception):
            trans.rollback()
        raise
    try:
        trans.commit()
    except BaseException:
        # The block-state registry memoizes a transaction's new ids at its commit event,
        # which fires before COMMIT reaches the server: after a failed COMMIT the memo may
        # hold ids the database never stored.
        clear_memo()
        with contextlib.suppress(Exception):
            trans.rollback()
        raise
    return result
