"""``DatabaseSetup``: the seed's ``database_setup.py`` as a library class.

Tables, sample data and world snapshots::

    from voxeldb.setup import DatabaseSetup     # or: from voxeldb.ops import DatabaseSetup

    setup = DatabaseSetup()                     # DATABASE_URL, else the embedded SQLite file
    setup.full_setup()                          # schema + a sample world
    path = setup.create_world_snapshot(world_id)
    setup.restore_world_snapshot(path, new_id=True, name="copy")

The snapshot format is described in :mod:`voxeldb.ops._snapshot` and docs/operations.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from voxeldb._ids import as_uuid
from voxeldb.ops import _snapshot

if TYPE_CHECKING:
    from voxeldb import ChunkStore, Database
    from voxeldb.ops._sample import SampleReport

__all__ = ["DatabaseSetup"]


def _voxeldb_version() -> str:
    try:
        return _dist_version("voxeldb")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class DatabaseSetup:
    """Schema, sample data and world snapshots for the database at ``url``.

    ``url`` defaults to ``DATABASE_URL`` (or ``.env``), else ``sqlite:///voxeldb.sqlite3``,
    exactly as :func:`voxeldb.connect`. ``cache`` is passed to ``connect`` too.
    """

    def __init__(self, url: str | None = None, *, cache: str | None = None) -> None:
        self.url = url
        self.cache = cache
        self._db: Database | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        """The :class:`voxeldb.Database` this setup works on (connected on first use)."""
        if self._db is None:
            import voxeldb

            self._db = voxeldb.connect(self.url, cache=self.cache)
        return self._db

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> DatabaseSetup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the seed's steps -----------------------------------------------------------------

    def create_tables(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        self.db.create_schema()

    def sample_data(self, *, size: int = 16, seed: int = 42) -> SampleReport:
        """Add the sample world (users, a ``size`` x ``size`` chunk world, characters, a
        branching story, agents). Skipped, and reported as such, when it exists already."""
        from voxeldb.ops._sample import create_sample_data

        return create_sample_data(self.db, size=size, seed=seed)

    def full_setup(self, *, size: int = 16, seed: int = 42) -> SampleReport:
        """:meth:`create_tables` then :meth:`sample_data`."""
        self.create_tables()
        return self.sample_data(size=size, seed=seed)

    # -- snapshots ------------------------------------------------------------------------

    def create_world_snapshot(
        self,
        world_id: uuid.UUID | str,
        path: str | os.PathLike[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        since: int | None = None,
    ) -> Path:
        """Write one portable file holding the world ``world_id``; returns its path.

        ``path`` may be a file or an existing directory; default ``./<name>-<UTC time>.vxsnap``.
        The world's journal head goes in the manifest. With ``since`` (a journal seq, e.g. the
        head of the previous file) the file is an *increment*: only the chunks changed after
        ``since``, and those deleted since as deletions (docs/operations.md, "Incremental
        backups"); a ``since`` past the head, or one whose journal has been pruned, is a
        :class:`~voxeldb.errors.SnapshotError`. Raises
        :class:`~voxeldb.errors.NotFoundError` for an unknown world.
        """
        return self.snapshot_info(world_id, path, progress=progress, since=since).path

    def snapshot_info(
        self,
        world_id: uuid.UUID | str,
        path: str | os.PathLike[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        since: int | None = None,
    ) -> _snapshot.SnapshotInfo:
        """:meth:`create_world_snapshot`, returning what was written (path, counts, journal
        head, ``since``)."""
        from voxeldb.meta import Base

        wid = as_uuid(world_id)
        store = self.db.chunks(wid)
        # Read from the journal before the snapshot's read transaction starts: every change up
        # to the head is then in the file (docs/operations.md, "Incremental backups").
        changed: list[tuple[int, int]] = []
        head = store.head() if since is None else _increment_keys(store, since, changed)
        info = _snapshot.create_world_snapshot(
            self.engine,
            Base.metadata,
            wid,
            path,
            version=_voxeldb_version(),
            progress=progress,
            journal_head=head,
            since=since,
            changed=changed,
        )
        return info

    def restore_world_snapshot(
        self,
        path: str | os.PathLike[str],
        *,
        new_id: bool = False,
        name: str | None = None,
        match_users_by_email: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> uuid.UUID:
        """Restore a snapshot (from either backend) into this database; returns the world id.

        The world keeps its id unless ``new_id``; restoring over an existing world id or name
        is a :class:`~voxeldb.errors.SnapshotError` (pass ``new_id=True`` and/or ``name=``).
        Chunks come back byte-identical. The schema is created when missing.

        Users the snapshot creates have no usable password (set one to let them log in). A
        file user whose e-mail belongs to another user here is refused unless
        ``match_users_by_email`` (then that user gets the file user's characters); one whose
        username is taken gets a fresh one (``alice-2``). docs/operations.md has the rules.

        An increment (``create_world_snapshot(..., since=seq)``) is applied on top of the world
        restored before from the same source world (that id, or the world named ``name``), only
        when it continues what that world holds; otherwise a SnapshotError says what is missing.
        """
        from voxeldb.meta import Base

        self.create_tables()
        return _snapshot.restore_world_snapshot(
            self.engine,
            Base.metadata,
            path,
            new_id=new_id,
            name=name,
            match_users_by_email=match_users_by_email,
            progress=progress,
        )


def _increment_keys(store: ChunkStore, since: int, changed: list[tuple[int, int]]) -> int:
    """Append to ``changed`` the chunks changed after journal seq ``since``; the head the
    increment covers up to (the last change read, or ``since``)."""
    from voxeldb.errors import SnapshotError

    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise SnapshotError(f"since must be a journal seq (an integer >= 0), not {since!r}")
    head = store.head()
    if since > head:
        raise SnapshotError(
            f"since {since} is past the world's journal head ({head}): nothing after it exists"
        )
    keys: set[tuple[int, int]] = set()
    last = since
    first: int | None = None
    for change in store.changes(since):
        if first is None:
            first = change.seq
        keys.add((change.cx, change.cz))
        last = change.seq
    if head > since and (first is None or first > since + 1):
        raise SnapshotError(
            f"the world's journal no longer holds the changes right after seq {since} (pruned): "
            "an increment from there would miss them; take a full snapshot instead"
        )
    changed.extend(sorted(keys))
    return last
