"""voxeldb: voxel-game worlds in PostgreSQL or SQLite, with a Redis and in-process chunk cache.

``db = voxeldb.connect()`` then ``db.chunks(world_id)`` for blocks and ``db.session()`` for
the metadata (``voxeldb.meta``); see the README and docs/architecture.md.

``import voxeldb`` is cheap: ``connect``, ``Database`` and ``ChunkStore`` (and with them
numpy and SQLAlchemy) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voxeldb import errors

if TYPE_CHECKING:
    from voxeldb._connect import Database, connect
    from voxeldb.chunks import BlockEdit, Change, ChunkStore, RollbackReport

    __version__: str

__all__ = [
    "BlockEdit",
    "Change",
    "ChunkStore",
    "Database",
    "RollbackReport",
    "__version__",
    "connect",
    "errors",
]


def __getattr__(name: str) -> Any:
    value: Any
    if name in ("connect", "Database"):
        from voxeldb import _connect

        value = getattr(_connect, name)
    elif name in ("ChunkStore", "Change", "BlockEdit", "RollbackReport"):
        from voxeldb import chunks

        value = getattr(chunks, name)
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("voxeldb")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0.0.0"
    else:
        raise AttributeError(f"module 'voxeldb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
