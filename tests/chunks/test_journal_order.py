"""The journal's order guarantee (CONTRACT §7) under concurrent writer processes.

Writer processes ('spawn') commit block edits to one world at once, over overlapping chunks
and transactions of different sizes; watcher processes follow ``watch``: one from start to
end, one that disconnects part way and resumes from the last seq it handled, one that polls
``changes(since=last)``. Every acknowledged change must reach every watcher exactly once, in
strictly ascending seq.

The negative control runs the same test with the naive design (a private switch: seqs drawn
at the start of a write, outside its transaction, as a database sequence would hand them
out) and shows that the check catches it: changes committed after a higher seq was already
seen are missed (PostgreSQL; SQLite's one writer at a time cannot show it).
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import voxeldb

WRITERS = 3
CALLS = 30
HEIGHT = 64
MIN_Y = 0
Seen = tuple[int, str | None, str, int, int]
"""(seq, actor, state type of its first block, cx, cz)."""

pytestmark = pytest.mark.slow


def _chunks_of_call(writer: int, n: int) -> list[tuple[int, int]]:
    # Between 1 and 8 chunks, overlapping between writers: row locks and sizes differ.
    count = 1 + (n * 5 + writer) % 8
    return [((writer + n + i) % 10, (i * 3) % 4) for i in range(count)]


def expected_total() -> int:
    return sum(len(set(_chunks_of_call(w, n))) for w in range(WRITERS) for n in range(CALLS))


def _writer(
    url: str, world: str, writer: int, naive: bool, start_at: float
) -> list[tuple[str, int, int]]:
    from voxeldb.chunks import _journal

    _journal._NAIVE = naive
    acknowledged = []
    with voxeldb.connect(url, cache="memory") as db:
        store = db.chunks(world, actor=f"writer:{writer}")
        time.sleep(max(0.0, start_at - time.time()))
        for n in range(CALLS):
            state = f"w{writer}-{n}"
            keys = sorted(set(_chunks_of_call(writer, n)))
            store.set_blocks(
                [
                    (cx * 16 + (n % 16), y, cz * 16 + writer, state)
                    for cx, cz in keys
                    for y in range(4)
                ]
            )
            # Acknowledged: set_blocks returned.
            acknowledged += [(state, cx, cz) for cx, cz in keys]
    return acknowledged


def _watcher(url: str, world: str, mode: str, total: int) -> list[Seen]:
    seen: list[Seen] = []
    deadline = time.monotonic() + 120
    with voxeldb.connect(url, cache="memory") as db:
        store = db.chunks(world)

        def record(change: Any) -> None:
            seen.append(
                (change.seq, change.actor, change.blocks[0].new["type"], change.cx, change.cz)
            )

        if mode == "poll":
            last = 0
            idle_since = time.monotonic()
            while len(seen) < total and time.monotonic() < deadline:
                got = False
                for change in store.changes(since=last):
                    record(change)
                    last = change.seq
                    got = True
                if got:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 10:
                    break
                time.sleep(0.005)
            return seen
        feed = store.watch(0, timeout=10)
        for change in feed:
            record(change)
            if mode == "resume" and len(seen) == total // 3:
                break  # disconnect part way
            if len(seen) >= total:
                return seen
        if mode == "resume":
            feed.close()
            time.sleep(0.3)
            for change in store.watch(seen[-1][0], timeout=10):
                record(change)
                if len(seen) >= total:
                    break
    return seen


def _run(url: str, naive: bool) -> tuple[list[tuple[str, int, int]], dict[str, list[Seen]]]:
    with voxeldb.connect(url, cache="memory") as db:
        world = str(
            db.create_world(f"order-{uuid.uuid4().hex[:6]}", {"height": HEIGHT, "min_y": MIN_Y})
        )
        db.chunks(world).set_blocks([(0, 0, 0, "stone")])  # the states' first rows, the head row
        head = db.chunks(world).head()
    total = expected_total() + head
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with ProcessPoolExecutor(WRITERS + 3, mp_context=ctx) as pool:
        watchers = {
            mode: pool.submit(_watcher, url, world, mode, total)
            for mode in ("watch", "resume", "poll")
        }
        writers = [pool.submit(_writer, url, world, w, naive, start_at) for w in range(WRITERS)]
        acknowledged = [entry for f in writers for entry in f.result(timeout=300)]
        seen = {mode: f.result(timeout=300) for mode, f in watchers.items()}
    return acknowledged, seen


def problems(acknowledged: list[tuple[str, int, int]], seen: dict[str, list[Seen]]) -> list[str]:
    """What is wrong with what each watcher saw: [] when everything holds."""
    found = []
    want = sorted(acknowledged)
    for mode, changes in seen.items():
        seqs = [c[0] for c in changes]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            found.append(f"{mode}: seqs not strictly ascending")
        got = sorted(
            (c[2], c[3], c[4]) for c in changes if c[1] is not None and c[1].startswith("writer:")
        )
        missing = len(set(want) - set(got))
        if missing:
            found.append(f"{mode}: {missing} acknowledged changes never delivered")
        if len(got) != len(set(got)):
            found.append(f"{mode}: a change delivered twice")
        if got != want and not missing:
            found.append(f"{mode}: delivered changes differ from the acknowledged ones")
    return found


def test_every_acknowledged_change_once_and_in_order(database_url: str) -> None:
    acknowledged, seen = _run(database_url, naive=False)
    assert len(acknowledged) == expected_total()
    assert problems(acknowledged, seen) == []
    # All three watchers saw the very same sequence.
    assert seen["watch"] == seen["resume"] == seen["poll"]


def test_negative_control_naive_seqs_are_caught(database_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the naive design cannot reorder there")
    # Probabilistic by nature: a few tries, each ~2 s; one caught run is enough.
    for _ in range(3):
        acknowledged, seen = _run(database_url, naive=True)
        found = problems(acknowledged, seen)
        if found:
            break
    assert found, "the naive design went unnoticed: the ordering test cannot fail"
    assert any("never delivered" in p or "ascending" in p for p in found)
