"""Where each section's palette and data sit in a sectioned body, given its mode table.

Sections are grouped by mode (0, 4, 8, 16, plain) so that encoder and decoder handle a whole
group with one numpy operation; ``docs/chunk-format.md`` ("Sectioned body") has the layout.
A world's chunks share few mode tables, so everything that follows from one is worked out
once and cached: per chunk only the 16-bit palettes' lengths remain to place.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._frame import DTYPES, MAX_HEIGHT
from voxeldb.errors import ChunkFormatError

SECTION_BLOCKS: Final = 4096
MAX_SECTIONS: Final = MAX_HEIGHT // 16

# Section modes: uniform (0); a palette of 16 or 256 entries with 4- or 8-bit indices; a
# palette with its own length and 16-bit indices; or the plain values. Widths 1 and 2 would
# save little after LZ4 (a few 2-state sections per chunk) and cost a decode pass each.
MODE_UNIFORM: Final = 0
MODE_PAL16: Final = 16
MODE_PLAIN: Final = 255
MODE_ORDER: Final = (MODE_UNIFORM, 4, 8, MODE_PAL16, MODE_PLAIN)
_KNOWN_MODES: Final = np.zeros(256, dtype=bool)
_KNOWN_MODES[list(MODE_ORDER)] = True

# Row offsets that turn a section's bytes into rows of a stacked (n * 256) lookup table.
_ROW16: Final = (np.arange(MAX_SECTIONS, dtype=np.uint16) << 8)[:, None]
# Shared by every thread and cached layout.
_KNOWN_MODES.flags.writeable = False
_ROW16.flags.writeable = False


def align4(n: int) -> int:
    return (n + 3) & ~3


def index_bytes(mode: int, itemsize: int) -> int:
    """Data bytes of one section in ``mode``."""
    if mode == MODE_PLAIN:
        return SECTION_BLOCKS * itemsize
    return SECTION_BLOCKS * mode // 8


class Group(NamedTuple):
    """Sections of one mode: where their palettes and data are, how to expand them."""

    mode: int
    rows: npt.NDArray[np.intp]
    start: int  # first section when ``rows`` is a contiguous run, else -1
    pal_off: int  # first palette entry (16-bit and plain groups: after all fixed ones)
    data_off: int  # first byte within the section data region
    nbytes: int  # data bytes per section
    row16: npt.NDArray[Any]  # (n, 1): 256 * k, turning byte b of row k into a table row
    wide: np.dtype[Any]  # mode 4: one item holding both values of a byte
    # Which of the indexed sections (modes 4, 8, 16, in section order) these are: a slice
    # when they are a run of them (mostly), else their positions. Plain and uniform: None.
    indexed: slice | npt.NDArray[np.intp] | None
    # The group as runs of consecutive sections: (first section, first of the group, count).
    # A decoder writes each run in place, where a scatter of rows would need a copy first.
    runs: tuple[tuple[int, int, int], ...]


class Layout(NamedTuple):
    groups: tuple[Group, ...]  # in MODE_ORDER, only the modes present
    n16: int  # sections with a 16-bit palette
    fixed_slots: int  # palette entries of the uniform, 4- and 8-bit sections
    base: npt.NDArray[np.intp]  # each indexed section's first palette entry (16-bit: 0)
    is16: npt.NDArray[np.bool_] | None  # which indexed sections have a 16-bit palette
    table_size: int  # mode table + padding + 16-bit palette lengths
    data_size: int  # index data and plain sections
    uniform: npt.NDArray[np.intp] | None  # the uniform sections, if any


def _runs(rows: npt.NDArray[np.intp]) -> tuple[tuple[int, int, int], ...]:
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    firsts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), rows.size]
    return tuple((int(rows[a]), a, b - a) for a, b in zip(firsts, ends, strict=True))


@lru_cache(maxsize=256)  # a layout is a few KB: bounded memory whatever the input
def layout(modes: bytes, itemsize: int) -> Layout:
    """Check a mode table and work out its layout; the chunks of a world share few tables."""
    table = np.frombuffer(modes, dtype=np.uint8)
    known = _KNOWN_MODES[table]
    if not known.all():
        sec = int(np.flatnonzero(~known)[0])
        raise ChunkFormatError(f"corrupt chunk: section {sec} has unknown mode {int(table[sec])}")
    indexed_rows = np.flatnonzero((table != MODE_UNIFORM) & (table != MODE_PLAIN))
    groups = []
    base = np.zeros(table.size, dtype=np.intp)
    fixed = data = n16 = 0
    uniform = None
    for mode in MODE_ORDER:
        rows = np.flatnonzero(table == mode)
        if not rows.size:
            continue
        rows.flags.writeable = False
        n = rows.size
        contiguous = int(rows[-1]) - int(rows[0]) + 1 == n
        nbytes = index_bytes(mode, itemsize) if mode else 0
        indexed: slice | npt.NDArray[np.intp] | None = None
        if mode == MODE_UNIFORM:
            uniform = rows
        elif mode != MODE_PLAIN:
            at = np.searchsorted(indexed_rows, rows)
            first = int(at[0])
            indexed = slice(first, first + n) if int(at[-1]) - first + 1 == n else at
        groups.append(
            Group(
                mode,
                rows,
                int(rows[0]) if contiguous else -1,
                fixed,
                data,
                nbytes,
                _ROW16[:n],
                np.dtype(f"<u{2 * itemsize}") if mode == 4 else DTYPES[itemsize],
                indexed,
                _runs(rows),
            )
        )
        if mode <= 8:
            base[rows] = fixed + (np.arange(n) << mode)
            fixed += n << mode
        elif mode == MODE_PAL16:
            n16 = n
        data += n * nbytes
    indexed_base = base[indexed_rows]
    indexed_base.flags.writeable = False
    is16 = None
    if n16:
        is16 = table[indexed_rows] == MODE_PAL16
        is16.flags.writeable = False
    return Layout(
        tuple(groups),
        n16,
        fixed,
        indexed_base,
        is16,
        align4(len(modes)) + 4 * n16,
        data,
        uniform,
    )
