"""No lost updates (CONTRACT §4): processes editing blocks of one chunk at once all win.

Each test starts >= 4 processes ('spawn') that set distinct blocks of the same chunk many
times, then counts the edits present. The negative control runs the naive read-modify-write
(get, modify, put: no lock, no version check) the same way and must lose edits, which shows
the test is able to fail.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import numpy as np
import pytest

import voxeldb

WORKERS = 4
EDITS = 30
HEIGHT = 64
MIN_Y = 0

pytestmark = pytest.mark.slow


def _worker(url: str, world: str, worker: int, mode: str, barrier: Any) -> None:
    with voxeldb.connect(url, cache="memory") as db:
        store = db.chunks(world)
        barrier.wait(60)
        for i in range(EDITS):
            if mode == "locked":
                if i % 2:
                    store.set_block(worker, i, 0, "stone")
                else:
                    # Two chunks per transaction: rows are locked in one order, no deadlock.
                    store.set_blocks([(16 + worker, i, 0, "stone"), (worker, i, 0, "stone")])
            else:
                current = store.get(0, 0)
                blocks = (
                    np.zeros((HEIGHT, 16, 16), np.uint16) if current is None else current.copy()
                )
                blocks[i, 0, worker] = 1
                time.sleep(0.002)  # the window in which another writer's edit gets overwritten
                store.put(0, 0, blocks)


def _run(url: str, mode: str) -> uuid.UUID:
    with voxeldb.connect(url, cache="memory") as db:
        db.create_schema()
        world = db.create_world("race", {"height": HEIGHT, "min_y": MIN_Y})
        if mode == "naive":
            db.chunks(world).put(0, 0, np.zeros((HEIGHT, 16, 16), np.uint16))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_worker, args=(url, str(world), w, mode, barrier))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    return world


def test_concurrent_set_blocks_lose_nothing(database_url: str) -> None:
    world = _run(database_url, "locked")
    with voxeldb.connect(database_url, cache="memory") as db:
        store = db.chunks(world)
        first, second = store.get(0, 0), store.get(1, 0)
    assert first is not None and second is not None
    # Every worker's every edit is there: column x = worker, y = 0..EDITS-1.
    assert int(np.count_nonzero(first)) == WORKERS * EDITS
    assert np.all(first[:EDITS, 0, :WORKERS] != 0)
    assert int(np.count_nonzero(second)) == WORKERS * ((EDITS + 1) // 2)


def test_negative_control_naive_read_modify_write_loses_edits(database_url: str) -> None:
    world = _run(database_url, "naive")
    with voxeldb.connect(database_url, cache="memory") as db:
        blocks = db.chunks(world).get(0, 0)
    assert blocks is not None
    lost = WORKERS * EDITS - int(np.count_nonzero(blocks))
    assert lost > 0


def test_concurrent_put_many_of_the_same_new_chunks(database_url: str) -> None:
    """Two bulk writers racing for the same new keys: both succeed, neither half-applies.

    On PostgreSQL both usually see the keys free and both COPY; the second COPY waits for the
    first transaction, fails on the primary key and redoes its batch as an upsert from a
    savepoint. On SQLite the second waits for the first's write lock.
    """
    import threading

    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        world = db.create_world("bulk", {"height": 16, "min_y": 0})
        store = db.chunks(world)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def write(value: int) -> None:
            def items() -> Any:
                for x in range(40):
                    for z in range(40):
                        yield x, z, np.full((16, 16, 16), value, np.uint16)

            try:
                barrier.wait(30)
                assert store.put_many(items()) == 1600
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(v,)) for v in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        got = store.region(0, 0, 39, 39)
        assert len(got) == 1600
        values = {int(a[0, 0, 0]) for a in got.values()}
        # Each call is one transaction, so one of them was applied last, in full.
        assert len(values) == 1 and values <= {1, 2}
