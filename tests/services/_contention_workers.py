"""Process entry points for the services contention test (importable under 'spawn')."""

from __future__ import annotations

from typing import Any


def set_blocks(url: str, world_id: str, row: int, count: int, barrier: Any, out: Any) -> None:
    """``count`` calls of ``services.set_block`` on one chunk; what each call raised."""
    errors: list[str] = []
    try:
        from voxeldb import services
        from voxeldb.meta import configure

        configure(url)
        barrier.wait(60)
        for i in range(count):
            try:
                services.set_block(world_id, i % 16, row // 16, row % 16, f"b{row}_{i % 16}")
            except Exception as exc:
                errors.append(repr(exc)[:200])
        out.put(("ok", errors))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", [repr(exc)]))
