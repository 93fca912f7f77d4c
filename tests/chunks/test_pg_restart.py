"""A PostgreSQL restart in the middle of a write load (CONTRACT §3/§4, fault injection).

A writer keeps writing through ``voxeldb.connect(url)`` to a private server that restarts
mid-run. Writes that raised are retried by the writer (the caller's job: a write that raised
may or may not have committed, and a put or set_block is safe to repeat); every acknowledged
write must be there afterwards, and the engine must recover on its own (a checkout sees the
closed socket, `_engine.connection_alive`; a read lost on a pooled connection runs once more).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy.exc import DBAPIError

import voxeldb
from tests._services import throwaway_postgres
from voxeldb.errors import DatabaseUnavailableError

HEIGHT = 32

pytestmark = pytest.mark.slow


def test_writes_survive_a_server_restart() -> None:
    with throwaway_postgres() as server, voxeldb.connect(server.url, cache="memory") as db:
        db.create_schema()
        store = db.chunks(db.create_world("restart", {"height": HEIGHT, "min_y": 0}))
        restarted = threading.Event()

        def restart() -> None:
            time.sleep(0.3)
            server.restart()
            restarted.set()

        acked: list[int] = []
        failures = 0
        after_restart = 0
        thread = threading.Thread(target=restart)
        thread.start()
        deadline = time.monotonic() + 25
        i = 0
        # Keep writing through the restart, and on for a few writes once it is over.
        while after_restart < 10:
            assert time.monotonic() < deadline, "the writer made no progress"
            blocks = np.full((HEIGHT, 16, 16), i + 1, np.uint16)
            while True:
                try:
                    if i % 2:
                        store.put(i, 0, blocks)
                    else:
                        store.set_block(16 * i, 0, 0, f"block_{i}")
                    break
                except (DatabaseUnavailableError, DBAPIError):
                    failures += 1
                    assert time.monotonic() < deadline, "the engine did not recover"
                    time.sleep(0.05)
            acked.append(i)
            after_restart += restarted.is_set()
            i += 1
        thread.join()

        assert failures > 0, "the restart never hit a write: the test proved nothing"
        for n in acked:
            if n % 2:
                got = store.get(n, 0)
                assert got is not None and int(got[0, 0, 0]) == n + 1, n
            else:
                assert store.get_block(16 * n, 0, 0) == {"type": f"block_{n}"}, n
