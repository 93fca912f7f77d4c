"""Operator jobs: setup and sample data, snapshots, transfer between databases, maps, health.

Sits above ``voxeldb.services`` and ``voxeldb.connect``; the CLI imports only from here.
Each name is imported from its module on first use, so a command pays only for its own job
(``voxeldb map`` never imports the snapshot or transfer code).

=================  ===========================================================
module             jobs
=================  ===========================================================
``_setup``         ``DatabaseSetup`` (schema, sample data, world snapshots)
``_sample``        sample data, generated terrain, ``ensure_world``
``_snapshot/``     world snapshot files: create, restore, read the manifest
``_transfer``      copy a whole database (``voxeldb migrate``)
``_map``           top-down PNG of a world
``_health``        the ``voxeldb health`` report
=================  ===========================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxeldb.ops._health import collect_health
    from voxeldb.ops._import import ImportProgress, ImportReport, import_world, run_import
    from voxeldb.ops._map import (
        BACKGROUND,
        BLOCK_COLORS,
        VOID,
        MapInfo,
        color_for,
        draw_map,
        map_frame,
        map_frame_from,
        render_map,
        stored_bounds,
        top_blocks,
    )
    from voxeldb.ops._map_sqlite import SQLiteMapSource, open_sqlite_map
    from voxeldb.ops._sample import (
        SampleReport,
        create_sample_data,
        ensure_world,
        generate_terrain,
    )
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
    "ImportProgress",
    "ImportReport",
    "MapInfo",
    "SQLiteMapSource",
    "SampleReport",
    "SnapshotInfo",
    "TransferProgress",
    "TransferReport",
    "WorldRef",
    "collect_health",
    "color_for",
    "create_sample_data",
    "create_world_snapshot",
    "draw_map",
    "ensure_world",
    "generate_terrain",
    "import_world",
    "map_frame",
    "map_frame_from",
    "open_sqlite_map",
    "read_manifest",
    "render_map",
    "resolve_world",
    "restore_world_snapshot",
    "run_import",
    "stored_bounds",
    "top_blocks",
    "transfer_database",
]

_HOMES: dict[str, tuple[str, ...]] = {
    "voxeldb.ops._health": ("collect_health",),
    "voxeldb.ops._import": ("ImportProgress", "ImportReport", "import_world", "run_import"),
    "voxeldb.ops._map": (
        "BACKGROUND",
        "BLOCK_COLORS",
        "VOID",
        "MapInfo",
        "color_for",
        "draw_map",
        "map_frame",
        "map_frame_from",
        "render_map",
        "stored_bounds",
        "top_blocks",
    ),
    "voxeldb.ops._map_sqlite": ("SQLiteMapSource", "open_sqlite_map"),
    "voxeldb.ops._sample": (
        "SampleReport",
        "create_sample_data",
        "ensure_world",
        "generate_terrain",
    ),
    "voxeldb.ops._setup": ("DatabaseSetup",),
    "voxeldb.ops._snapshot": (
        "CHUNKS_MEMBER",
        "MANIFEST",
        "SnapshotInfo",
        "create_world_snapshot",
        "read_manifest",
        "restore_world_snapshot",
    ),
    "voxeldb.ops._transfer": ("TransferProgress", "TransferReport", "transfer_database"),
    "voxeldb.services": ("WorldRef", "resolve_world"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'voxeldb.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
