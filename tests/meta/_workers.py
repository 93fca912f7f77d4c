"""Process entry points for the multi-process registry test (importable under 'spawn')."""

from __future__ import annotations

import uuid
from typing import Any

from voxeldb._engine import make_engine
from voxeldb.chunks._registry import intern_states


def intern_in_batches(
    url: str, world_id: str, states: list[Any], batch: int, barrier: Any, out: Any
) -> None:
    engine = make_engine(url).execution_options(sqlite_begin="IMMEDIATE")
    try:
        barrier.wait(60)
        ids: dict[str, int] = {}
        for start in range(0, len(states), batch):
            chunk = states[start : start + batch]
            with engine.begin() as conn:
                got = intern_states(conn, uuid.UUID(world_id), chunk)
            for state, state_id in zip(chunk, got, strict=True):
                ids[state if isinstance(state, str) else state["type"]] = state_id
        out.put(("ok", ids))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))
    finally:
        engine.dispose()
