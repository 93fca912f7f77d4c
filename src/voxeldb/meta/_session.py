"""``SessionLocal``: the seed's session factory, bound lazily to ``DATABASE_URL``."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from voxeldb._engine import make_engine, sqlite_write_lock

__all__ = ["SessionLocal", "configure", "get_engine", "write_lock"]

_lock = threading.Lock()
_engine: Engine | None = None
_url: str | URL | None = None


def get_engine() -> Engine:
    """The engine ``SessionLocal`` uses: made on first use, from ``configure``'s URL or the settings."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = make_engine(_url)
        return _engine


def configure(url: str | URL | None = None) -> None:
    """Point ``SessionLocal`` at ``url`` (``None``: read ``DATABASE_URL`` again on next use).

    The previous engine's pooled connections are closed.
    """
    global _engine, _url
    with _lock:
        old, _engine, _url = _engine, None, url
    if old is not None:
        old.dispose()


class _LazySessionMaker(sessionmaker[Session]):
    """A ``sessionmaker`` whose engine is made when the first session is, not at import."""

    def __call__(self, **local_kw: Any) -> Session:
        if local_kw.get("bind") is None and self.kw.get("bind") is None:
            local_kw["bind"] = get_engine()
        return super().__call__(**local_kw)


# Objects stay readable after their session commits and closes, as the seed's examples
# expect (they return the object from inside ``with SessionLocal() as session``).
SessionLocal: sessionmaker[Session] = _LazySessionMaker(expire_on_commit=False)


def write_lock(session: Session) -> None:
    """Make ``session``'s transaction hold SQLite's write lock from now on (no-op elsewhere).

    For read-modify-write work on a caller's session: rows read after this call cannot be
    changed by another writer before this transaction ends. If the transaction has written
    nothing yet, its read snapshot is given up (objects read before may be stale: read them
    again) and a write transaction begun, waiting up to the busy timeout for other writers
    (``voxeldb._engine.sqlite_write_lock``, which every first write of a transaction goes
    through anyway). On PostgreSQL, lock the rows themselves (``SELECT ... FOR UPDATE``).
    """
    sqlite_write_lock(session.connection())
