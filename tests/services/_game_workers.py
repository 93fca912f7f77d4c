"""Process entry points for the multi-process game tests (importable under 'spawn')."""

from __future__ import annotations

from typing import Any


def gain(url: str, character_id: str, times: int, amount: int, barrier: Any, out: Any) -> None:
    try:
        from voxeldb import services
        from voxeldb.meta import configure

        configure(url)
        barrier.wait(60)
        levels = 0
        for _ in range(times):
            levels += len(services.gain_experience(character_id, amount))
        out.put(("ok", levels))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))


def choose(
    url: str, story_id: str, character_id: str, option: str, times: int, barrier: Any, out: Any
) -> None:
    try:
        from voxeldb import services
        from voxeldb.meta import configure

        configure(url)
        barrier.wait(60)
        for _ in range(times):
            services.choose(story_id, character_id, option)
        out.put(("ok", times))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))
