"""``voxeldb.connect``: one engine, one in-process chunk cache, optionally Redis.

A layer above ``voxeldb.services`` (docs/architecture.md): ``Database.chunks`` builds a
``ChunkStore`` from the backend registry and the shared cache tiers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from voxeldb import services
from voxeldb._engine import make_engine
from voxeldb._ids import as_uuid
from voxeldb._redis import database_namespace
from voxeldb._settings import Settings, get_settings
from voxeldb.chunks import (
    ChunkLRU,
    ChunkStore,
    RedisChunkCache,
    check_journal_actor,
    create_journal_partitions,
    open_backend,
    prune_journal,
    world_compression,
    world_shape,
)
from voxeldb.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    ValidationError,
    driver_errors,
)
from voxeldb.meta import World

__all__ = ["MEMORY_ONLY", "Database", "connect"]

_log = logging.getLogger(__name__)

MEMORY_ONLY = "memory"
"""``cache=`` value that keeps chunks in the in-process cache only, even if REDIS_URL is set."""

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def connect(url: str | URL | None = None, *, cache: str | None = None) -> Database:
    """A :class:`Database` for ``url``.

    ``url`` defaults to ``DATABASE_URL`` (environment, then ``.env`` in the working
    directory), else ``sqlite:///voxeldb.sqlite3``. ``cache`` is a Redis URL, by default
    ``REDIS_URL`` (none if unset); ``cache="memory"`` uses no Redis even when ``REDIS_URL``
    is set. The in-process LRU (``VOXELDB_CACHE_BYTES``) is always there.
    """
    return Database(url, cache=cache)


class Database:
    """A connection to one voxeldb database: sessions for metadata, chunk stores per world.

    Thread-safe; share one per process. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        cache: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else get_settings()
        redis_url = _redis_url(cache, self.settings)
        self.engine: Engine = make_engine(url, self.settings)
        self.lru = ChunkLRU(self.settings.cache_bytes)
        self.redis: RedisChunkCache | None = None
        if redis_url is not None:
            try:
                self.redis = RedisChunkCache(
                    redis_url,
                    # A world restored from a snapshot into another database keeps its id:
                    # the database's tag keeps two databases sharing one Redis apart.
                    prefix=database_namespace(self.settings.redis_key_prefix, self.engine.url),
                    mode=self.settings.redis_mode,
                    ttl_seconds=self.settings.redis_ttl_seconds,
                    timeout_seconds=self.settings.redis_timeout_seconds,
                    retry_seconds=self.settings.redis_retry_seconds,
                )
            except BaseException:
                self.engine.dispose()
                raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._closed = False
        self._partitions_day: dt.date | None = None

    def __repr__(self) -> str:
        cache = "redis" if self.redis is not None else "memory"
        return f"<Database {self.engine.url.render_as_string(hide_password=True)} cache={cache}>"

    @property
    def backend(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Bring the database to the newest Alembic revision (creates every table)."""
        from voxeldb.meta import upgrade

        upgrade(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session: committed when the block succeeds, rolled back when it raises."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def create_world(self, name: str, settings: dict[str, Any] | None = None) -> uuid.UUID:
        """A new world (validated by ``voxeldb.services.create_world``); its id."""
        with self.session() as session:
            world = services.create_world(name, settings, session=session)
            session.flush()
            world_id: uuid.UUID = world.id
        return world_id

    def chunks(self, world_id: uuid.UUID | str, *, actor: str | None = None) -> ChunkStore:
        """The chunk store of world ``world_id``; a NotFoundError if there is no such world.

        ``actor`` (at most 200 characters) is recorded in the journal with every change made
        through the store."""
        wid = as_uuid(world_id)
        actor = check_journal_actor(actor)
        # A server that is down is not a missing world (nor a missing schema).
        with driver_errors(
            unavailable="cannot connect to the database",
            otherwise=lambda reason: DatabaseUnavailableError(
                f"cannot connect to the database: {reason}"
            ),
        ):
            conn = self.engine.connect()
        with (
            driver_errors(
                _no_kind,
                otherwise=lambda reason: NotFoundError(
                    f"cannot read world {wid}: {reason} (has db.create_schema() been run?)"
                ),
            ),
            conn,
        ):
            row = conn.execute(select(World.world_settings).where(World.id == wid)).first()
        if row is None:
            raise NotFoundError(f"world {wid} does not exist")
        height, min_y = world_shape(row[0])
        store = ChunkStore(
            open_backend(self.engine, wid),
            height=height,
            min_y=min_y,
            lru=self.lru,
            redis=self.redis,
            actor=actor,
            **world_compression(row[0]),
        )
        self._journal_upkeep()
        return store

    def _journal_upkeep(self) -> None:
        """PostgreSQL: the journal's daily partitions a week ahead, made at most once a day
        per process, in a short transaction of its own (never inside a write)."""
        if self.backend != "postgresql":
            return
        today = dt.datetime.now(dt.UTC).date()
        if self._partitions_day == today:
            return
        try:
            with self.engine.begin() as conn:
                create_journal_partitions(conn)
        except Exception:
            _log.warning("could not create the journal's partitions", exc_info=True)
            return
        self._partitions_day = today

    def prune_journal(
        self, *, older_than: dt.timedelta, world_id: uuid.UUID | str | None = None
    ) -> int:
        """Delete the journal entries older than ``older_than`` (of every world, or of
        ``world_id``); how many. Chunks are not touched; pruned history cannot be rolled
        back. PostgreSQL drops whole daily partitions (docs/journal.md)."""
        if not isinstance(older_than, dt.timedelta) or older_than < dt.timedelta(0):
            raise ValidationError(
                f"older_than must be a timedelta >= 0, got {older_than!r}", field="older_than"
            )
        wid = None if world_id is None else as_uuid(world_id)
        cutoff = dt.datetime.now(dt.UTC) - older_than
        with (
            driver_errors(unavailable="cannot connect to the database"),
            self.engine.connect() as conn,
        ):
            if self.backend == "postgresql":
                with conn.begin():
                    count = prune_journal(conn, cutoff, wid)
            else:
                count = prune_journal(conn, cutoff, wid)
        self._journal_upkeep()
        return count

    def close(self) -> None:
        """Release the connection pool and the Redis connections."""
        if self._closed:
            return
        self._closed = True
        self.engine.dispose()
        if self.redis is not None:
            self.redis.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _redis_url(cache: str | None, settings: Settings) -> str | None:
    if cache is None:
        return settings.redis_url or None
    if not isinstance(cache, str):
        raise ConfigurationError(
            f"cache must be a Redis URL or {MEMORY_ONLY!r}, got {type(cache).__name__}"
        )
    if cache == MEMORY_ONLY:
        return None
    if not cache.startswith(_REDIS_SCHEMES):
        raise ConfigurationError(
            f"cache must be a Redis URL (redis://, rediss://, unix://) or {MEMORY_ONLY!r}, "
            f"got {cache!r}"
        )
    return cache


def _no_kind(_exc: BaseException) -> None:
    """Every driver error reading a world's settings means the same: it cannot be read."""
    return None
