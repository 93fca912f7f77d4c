"""What a reader hands the writer: one chunk column, parsed, not yet in the world's ids.

Readers run in worker processes, so everything here is plain data that pickles cheaply: a
column is a local palette of state keys (index 0 is always air) and its non-air sections as
one ``(sections, 16, 16, 16)`` array of indices into that palette, indexed
``[section, y, z, x]`` (uint8 when the palette allows: half the bytes to ship).
"""

from __future__ import annotations

import json
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "AIR_KEY",
    "Column",
    "LocalPalette",
    "parallel_map",
    "plain_json",
    "state_key",
    "worker_count",
]

AIR_KEY = '{"type":"air"}'
"""The registry's key of voxeldb air (id 0)."""

_T = TypeVar("_T")
_R = TypeVar("_R")

Sections = npt.NDArray[Any]
"""uint8 or uint16 indices into a column palette."""


def state_key(state: dict[str, Any]) -> str:
    """The block-state registry's canonical key (``voxeldb.chunks``' ``state_key``)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)


class LocalPalette:
    """State keys of one column, numbered in order of first use; 0 is air."""

    __slots__ = ("index", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = [AIR_KEY]
        self.index: dict[str, int] = {AIR_KEY: 0}

    def id_of(self, key: str) -> int:
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.keys)
            self.keys.append(key)
        return found


@dataclass
class Column:
    """One parsed chunk column, or why it is not imported (``damaged``/``skipped``)."""

    cx: int
    cz: int
    palette: list[str] = field(default_factory=lambda: [AIR_KEY])
    ys: list[int] = field(default_factory=list)
    """Each stored section's index: its blocks are ``16 * index`` to ``16 * index + 15`` in y."""
    blocks: Sections | None = None
    """The sections' indices into ``palette``, ``(len(ys), 16, 16, 16)``."""
    metadata: dict[str, Any] | None = None
    damaged: str | None = None
    """Why the column cannot be imported (a message naming it)."""
    skipped: str | None = None
    """A reason it is not imported that is no damage (``"not_full"``, ``"not_generated"``)."""
    not_generated: int = 0
    """MapBlocks of the column left out because Luanti marks them not generated."""

    @property
    def sections(self) -> list[tuple[int, Sections]]:
        """``(section index, indices)`` of each stored section."""
        if self.blocks is None:
            return []
        return list(zip(self.ys, self.blocks, strict=True))

    def set_sections(self, sections: list[tuple[int, Sections]]) -> None:
        self.ys = [y for y, _indices in sections]
        self.blocks = np.stack([indices for _y, indices in sections]) if sections else None


def plain_json(value: Any) -> Any:
    """A parsed NBT value as plain JSON: compounds to dicts, arrays to lists of ints."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        number = float(value)
        return number if np.isfinite(number) else None
    return str(value)


def worker_count(requested: int | None) -> int:
    """How many parser processes: ``requested``, else one per CPU this process may use when
    another CPU is idle, else 1 (in-process).

    Measured (docs/importing.md): a pool halves the parsing when the second CPU is idle, and
    is slower than parsing in-process when other jobs keep the CPUs busy (the workers then
    fight the writer for them). The one-minute load average, which counts this process,
    tells the two apart.
    """
    if requested is not None:
        return max(1, requested)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average
        idle = cpus - 1.0
    return max(1, min(cpus, 1 + int(idle + 0.25)))


def _quiet_worker() -> None:
    """Ctrl-C is the parent's to handle: it stops feeding the pool and the import ends with
    the batches written so far committed (a rerun resumes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parallel_map(
    fn: Callable[[_T], _R], tasks: Iterable[_T], workers: int, window: int | None = None
) -> Iterator[_R]:
    """``map(fn, tasks)`` in order, on ``workers`` processes (in-process for one).

    At most ``window`` tasks are in flight, so memory stays bounded however many tasks
    there are. Workers are forked where the system can (a script calling the importer at
    its top level then works; spawned workers would re-run it): they run only the parsers,
    which touch no lock, connection or thread of the parent.
    """
    if workers <= 1:
        yield from map(fn, tasks)
        return
    window = window or 2 * workers + 2
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    context = get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        pending: deque[Future[_R]] = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
