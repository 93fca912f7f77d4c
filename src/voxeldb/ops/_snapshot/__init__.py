"""World snapshots: one portable, self-checking file per world (``DatabaseSetup``, ``voxeldb snapshot``).

A snapshot is a zip archive (``_archive``):

- ``manifest.json``: format name and version, the world's id and name, row counts, the source
  backend and Alembic revision, and the size and SHA-256 of every other member;
- ``tables/<table>.json``: the world's rows of every table that hangs off ``worlds`` by foreign
  keys (the world row, the block-state registry, characters and their inventories and
  relationships, stories and choices, agent activities and evolution log), plus the rows those
  point at outside the world (``users``, ``ai_agents``) as *reference* rows (``_rows``);
- ``chunks.bin``: every chunk exactly as stored (the codec's bytes), never decoded.

Password hashes never leave the database. Writing is atomic (``_create``), and a killed
writer's temporary file is removed by the next create. A restore treats the file as hostile:
the manifest's structure is checked in one place, every member is bounded and streamed,
every SHA-256 checked and every chunk decoded, in one transaction, so a corrupt or crafted
file changes nothing (``_archive``, ``_restore``); it never takes a password from the file,
nor gives an existing account the world's characters by e-mail unless asked. The format and
the rules are described for operators in docs/operations.md.
"""

from __future__ import annotations

from voxeldb.ops._snapshot._archive import (
    CHUNKS_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    read_manifest,
)
from voxeldb.ops._snapshot._create import SnapshotInfo, create_world_snapshot
from voxeldb.ops._snapshot._restore import restore_world_snapshot

__all__ = [
    "CHUNKS_MEMBER",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "SnapshotInfo",
    "create_world_snapshot",
    "read_manifest",
    "restore_world_snapshot",
]
