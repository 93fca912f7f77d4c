"""voxeldb: voxel-game worlds in PostgreSQL or SQLite, with a Redis and in-process chunk cache.

``db = voxeldb.connect()`` then ``db.chunks(world_id)`` for blocks and ``db.session()`` for
the metadata (``voxeldb.meta``); see the README and CONTRACT.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from voxeldb import errors
from voxeldb._connect import Database, connect
from voxeldb.chunks import ChunkStore

try:
    __version__ = version("voxeldb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["ChunkStore", "Database", "__version__", "connect", "errors"]
