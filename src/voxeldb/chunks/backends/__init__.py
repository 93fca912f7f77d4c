"""The chunk-store backends, chosen by SQLAlchemy dialect name.

A backend is a module here implementing :class:`Backend` (``_base``), registered below under
its dialect name. Modules are imported on first use, so ``psycopg`` is loaded only by a
PostgreSQL store. ``ChunkStore`` and the cache tiers need no change for a new backend; run
the ``ChunkStoreTests`` contract suite (``tests/chunks/store_contract.py``) against it.
"""

from __future__ import annotations

import importlib
import uuid

from sqlalchemy import Engine

from voxeldb.chunks.backends._base import Backend, NewRow
from voxeldb.errors import ValidationError

__all__ = ["Backend", "NewRow", "backend_class", "open_backend", "register_backend"]

_REGISTRY: dict[str, str] = {
    "postgresql": "voxeldb.chunks.backends.postgres:PostgresBackend",
    "sqlite": "voxeldb.chunks.backends.sqlite:SQLiteBackend",
}


def register_backend(dialect: str, target: str | type[Backend]) -> None:
    """Serve ``dialect`` with ``target``: a Backend subclass or ``"module:Class"``."""
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[dialect] = target


def backend_class(dialect: str) -> type[Backend]:
    """The Backend subclass registered for ``dialect``; a ValidationError if there is none."""
    target = _REGISTRY.get(dialect)
    if target is None:
        raise ValidationError(f"no chunk store for database backend {dialect!r}", field="url")
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValidationError(f"{target} is not a chunk-store Backend", field="url")
    return cls


def open_backend(engine: Engine, world_id: uuid.UUID) -> Backend:
    """The backend of ``engine``'s dialect for world ``world_id``."""
    return backend_class(engine.dialect.name)(engine, world_id)
