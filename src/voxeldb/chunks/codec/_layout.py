"""Where each section's palette and data sit in a sectioned body, given its mode table.

Sections are grouped by mode (0, 4, 8, 16, plain) so that encoder and decoder handle a whole
group with one numpy operation; ``docs/chunk-format.md`` ("Sectioned body") has the layout.
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

# Row offsets that turn a section's bytes into rows of a stacked (n * 256) lookup table.
_ROW16: Final = (np.arange(MAX_SECTIONS, dtype=np.uint16) << 8)[:, None]
_ROW16.flags.writeable = False  # shared by every thread and cached layout


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


class Layout(NamedTuple):
    groups: tuple[Group, ...]  # in MODE_ORDER, only the modes present
    n16: int  # sections with a 16-bit palette
    fixed_slots: int  # palette entries of the uniform, 4- and 8-bit sections
    base: npt.NDArray[np.intp]  # each such section's first palette entry
    table_size: int  # mode table + padding + 16-bit palette lengths
    data_size: int  # index data and plain sections


@lru_cache(maxsize=256)  # a layout is a few KB: bounded memory whatever the input
def layout(modes: bytes, itemsize: int) -> Layout:
    """Check a mode table and work out its layout; the chunks of a world share few tables."""
    table = np.frombuffer(modes, dtype=np.uint8)
    bad = np.setdiff1d(table, np.array(MODE_ORDER, dtype=np.uint8))
    if bad.size:
        sec = int(np.flatnonzero(table == bad[0])[0])
        raise ChunkFormatError(f"corrupt chunk: section {sec} has unknown mode {int(bad[0])}")
    groups = []
    base = np.zeros(table.size, dtype=np.intp)
    fixed = data = n16 = 0
    for mode in MODE_ORDER:
        rows = np.flatnonzero(table == mode)
        if not rows.size:
            continue
        rows.flags.writeable = False
        n = rows.size
        contiguous = int(rows[-1]) - int(rows[0]) + 1 == n
        nbytes = index_bytes(mode, itemsize) if mode else 0
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
            )
        )
        if mode <= 8:
            base[rows] = fixed + (np.arange(n) << mode)
            fixed += n << mode
        elif mode == MODE_PAL16:
            n16 = n
        data += n * nbytes
    base.flags.writeable = False
    return Layout(tuple(groups), n16, fixed, base, align4(len(modes)) + 4 * n16, data)
