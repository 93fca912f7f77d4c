"""Old home of the migration runner, now :mod:`voxeldb.meta` (``voxeldb.meta._migrations``).

Kept only while modules outside ``meta``/``ops`` still import it (``voxeldb._connect``,
``voxeldb/migrations/env.py``, ``alembic/env.py``, ``tests/conftest.py``); new code imports
from ``voxeldb.meta``.
"""

from __future__ import annotations

from voxeldb.meta import (
    alembic_config,
    configure_kwargs,
    current,
    downgrade,
    head_revision,
    pending_changes,
    script_location,
    sqlite_foreign_keys_off,
    upgrade,
)

__all__ = [
    "alembic_config",
    "configure_kwargs",
    "current",
    "downgrade",
    "head_revision",
    "pending_changes",
    "script_location",
    "sqlite_foreign_keys_off",
    "upgrade",
]
