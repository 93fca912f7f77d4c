"""Process entry points for tests/chunks/test_hardening.py (importable under 'spawn')."""

from __future__ import annotations

from typing import Any


def set_block(url: str, world: str, x: int, y: int, z: int, state: Any) -> None:
    """Another process, with a memo of its own, edits one block (no Redis)."""
    import voxeldb

    with voxeldb.connect(url, cache="memory") as db:
        db.chunks(world).set_block(x, y, z, state)
