"""Process entry points for the multi-process service tests (importable under 'spawn')."""

from __future__ import annotations

from typing import Any


def set_blocks(url: str, world_id: str, row: int, count: int, barrier: Any, out: Any) -> None:
    try:
        from voxeldb import services
        from voxeldb.meta import configure

        configure(url)
        barrier.wait(60)
        for x in range(count):
            services.set_block(world_id, x, 0, row, f"block_{row}")
        out.put(("ok", row))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))
