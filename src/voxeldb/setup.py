"""``voxeldb.setup.DatabaseSetup``, the name the public contract gives the setup class.

It exists only for that name (and the seed's ``database_setup.py`` it mirrors); the class lives
in :mod:`voxeldb.ops` with the other operator jobs.
"""

from __future__ import annotations

from voxeldb.ops import DatabaseSetup

__all__ = ["DatabaseSetup"]
