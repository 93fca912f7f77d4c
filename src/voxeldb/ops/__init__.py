"""Operator jobs: setup and sample data, snapshots, transfer between databases, maps, health.

Sits above ``voxeldb.services`` and ``voxeldb.connect``; the CLI imports only from here.
"""

from __future__ import annotations

from voxeldb.ops._health import collect_health
from voxeldb.ops._map import (
    BACKGROUND,
    BLOCK_COLORS,
    VOID,
    MapInfo,
    color_for,
    map_frame,
    render_map,
    stored_bounds,
    top_blocks,
)
from voxeldb.ops._sample import SampleReport, create_sample_data, ensure_world, generate_terrain
from voxeldb.ops._setup import DatabaseSetup
from voxeldb.ops._snapshot import (
    CHUNKS_MEMBER,
    MANIFEST,
    SnapshotInfo,
    create_world_snapshot,
    read_manifest,
    restore_world_snapshot,
)
from voxeldb.ops._transfer import TransferProgress, TransferReport, transfer_database
from voxeldb.services import WorldRef, resolve_world

__all__ = [
    "BACKGROUND",
    "BLOCK_COLORS",
    "CHUNKS_MEMBER",
    "MANIFEST",
    "VOID",
    "DatabaseSetup",
    "MapInfo",
    "SampleReport",
    "SnapshotInfo",
    "TransferProgress",
    "TransferReport",
    "WorldRef",
    "collect_health",
    "color_for",
    "create_sample_data",
    "create_world_snapshot",
    "ensure_world",
    "generate_terrain",
    "map_frame",
    "read_manifest",
    "render_map",
    "resolve_world",
    "restore_world_snapshot",
    "stored_bounds",
    "top_blocks",
    "transfer_database",
]
