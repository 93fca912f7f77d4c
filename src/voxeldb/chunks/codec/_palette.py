"""Encoder side of the sections: each section's palette, mode and packed indices.

Every step is one numpy operation over all sections at once. Chunks whose ids are all below
:data:`SMALL_IDS` (generated terrain) take a faster path: per-section presence bit masks
instead of a sort, and one gather that maps two neighbouring blocks straight to their packed
byte. Both paths give the same bytes (a test checks by switching the fast one off).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._layout import MAX_SECTIONS, MODE_PLAIN, SECTION_BLOCKS

Array = npt.NDArray[Any]

# Ids below this take the bit-mask path (one u32 bit per id). Read at each call, so a test
# can set it to 0 to force the sorting path.
SMALL_IDS = 32

# A 16-bit palette section stores 4 + 4p + 8192 bytes; it is used only while that is less
# than the plain section (16384 bytes of uint32), i.e. p <= 2046.
_MAX_P16: Final = 2046
# Past this many (section, id) slots the id->index table is not worth allocating.
_LUT_LIMIT: Final = 1 << 18


def _mode_table(max16: int) -> npt.NDArray[np.uint8]:
    """Palette size (0..4096) -> section mode: the narrowest index width that holds it."""
    sizes = np.arange(SECTION_BLOCKS + 1)
    bounds = np.array((16, 256, max16))
    return np.array((4, 8, 16, MODE_PLAIN), dtype=np.uint8)[np.searchsorted(bounds, sizes)]


_MODES_U16: Final = _mode_table(256)  # a 16-bit palette never beats plain uint16
_MODES_U32: Final = _mode_table(_MAX_P16)
_ONE32: Final = np.uint32(1)
# (section, id0, id1) -> one key into the stacked pair tables of the bit-mask path.
_ROW1024: Final = (np.arange(MAX_SECTIONS, dtype=np.uint32) << 10)[:, None]
# Shared by every thread: make accidental writes fail loudly.
for _table in (_MODES_U16, _MODES_U32, _ROW1024):
    _table.flags.writeable = False


class Palettes(NamedTuple):
    """The palettes of some sections (rows of ``mixed``) and every block's index into its own."""

    values: Array  # all palettes, row by row, each in increasing order
    row: npt.NDArray[np.intp]  # the row each palette entry belongs to
    rank: Array  # each entry's index in its palette
    sizes: npt.NDArray[np.intp]  # palette sizes
    local: Array  # (rows, 4096) indices, or (rows, 2048) pair codes
    pairs: bool = False


class Choice(NamedTuple):
    """What the encoder does with each non-uniform section."""

    palettes: Palettes | None  # of the sections that are not plain, if any
    modes: npt.NDArray[np.uint8]  # one per non-uniform section
    plain: npt.NDArray[np.bool_] | None  # which sections stay plain, None if none do


def choose(mixed: Array, highest: Array) -> Choice:
    """Palettes and modes of the non-uniform sections ``mixed`` (rows of 4096 ids).

    ``highest`` is each row's largest id; it picks the path.
    """
    wide = mixed.itemsize == 4
    modes_by_size = _MODES_U32 if wide else _MODES_U16
    if int(highest.max()) < SMALL_IDS:
        small = _palettes_small(mixed, modes_by_size)
        return Choice(small, modes_by_size.take(small.sizes), None)
    # Sections past the palette limit stay plain; the others all take a palette.
    values, row, kept = _palettes_sorted(mixed, _MAX_P16 if wide else 256)
    modes = np.full(mixed.shape[0], MODE_PLAIN, dtype=np.uint8)
    pal: Palettes | None = None
    if kept.size:
        modes[kept] = modes_by_size.take(np.bincount(row, minlength=kept.size))
        pal = _index_sorted(mixed if kept.size == mixed.shape[0] else mixed[kept], values, row)
    plain = modes == MODE_PLAIN
    return Choice(pal, modes, plain if plain.any() else None)


def pack(local: Array, width: int, pairs: bool) -> Array:
    """Indices (n, 4096), or pair codes (n, 2048), as width-bit streams: (n, 512 * width) bytes."""
    if pairs:
        if width == 8:
            return local.astype("<u2", copy=False).view(np.uint8)
        return local.astype(np.uint8)  # width 4: a pair code is the packed byte
    if width == 16:
        return local.astype("<u2", copy=False)
    if local.dtype != np.uint8:
        local = local.astype(np.uint8)
    if width == 8:
        return local
    # Width 4: each little-endian u16 holds two indices in its two bytes; fold the high one down.
    both: Array = np.ascontiguousarray(local).view("<u2")
    packed: npt.NDArray[np.uint8] = (both | (both >> 4)).astype(np.uint8)
    return packed


def _palettes_small(mixed: Array, modes_by_size: npt.NDArray[np.uint8]) -> Palettes:
    """Ids below 32 (natural terrain): one bit per id, OR-ed over each section, beats sorting.

    ``local`` then holds pair codes: for blocks 2j and 2j+1, ``i0 | i1 << width``, looked up
    in one gather from a per-section table indexed by both ids, which halves the gather and
    for 4-bit sections already is the packed byte.
    """
    n = mixed.shape[0]
    masks = np.bitwise_or.reduce(np.left_shift(_ONE32, mixed, dtype=np.uint32), axis=1)
    present = np.unpackbits(
        masks.astype("<u4").view(np.uint8).reshape(n, 4), axis=1, bitorder="little"
    )
    row, values = np.nonzero(present)
    sizes = np.bincount(row, minlength=n)
    # index_of[r, id] = index of id in section r's palette (where present).
    index_of = np.cumsum(present, axis=1, dtype=np.uint16)
    index_of -= 1
    rank = index_of[row, values]
    width = modes_by_size.take(sizes).astype(np.uint16)
    pair_codes = index_of[:, None, :] | (index_of[:, :, None] << width[:, None, None])
    # Two neighbouring ids in one little-endian word -> id0 | id1 << 5 | r << 10.
    word = mixed.view("<u4" if mixed.itemsize == 2 else "<u8")
    keys = word >> (8 * mixed.itemsize - 5)
    keys |= word
    keys &= 1023
    keys |= _ROW1024[:n]
    local = pair_codes.reshape(-1).take(keys, mode="wrap")
    return Palettes(values, row, rank, sizes, local, True)


def _palettes_sorted(
    mixed: Array, limit: int
) -> tuple[Array, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Palettes of the rows with at most ``limit`` distinct ids (the others stay plain).

    Returns all those palettes concatenated (each sorted), the row (numbered among the kept
    ones) of each entry, and which rows of ``mixed`` were kept.
    """
    ordered = np.sort(mixed, axis=1)
    first = np.empty(ordered.shape, dtype=bool)
    first[:, 0] = True
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=first[:, 1:])
    kept = np.arange(mixed.shape[0])
    if np.count_nonzero(first) > limit:
        # Some section may be noise: count per row (slower) and drop those past the limit,
        # sparing them the costly extraction below.
        ok = first.view(np.uint8).sum(axis=1, dtype=np.uint16) <= limit
        if not ok.all():
            kept = np.flatnonzero(ok)
            ordered, first = ordered[kept], first[kept]
    pos = np.flatnonzero(first)  # the first of each run of equal ids, row by row
    return ordered.reshape(-1).take(pos), pos >> 12, kept


def _index_sorted(mixed: Array, values: Array, row: npt.NDArray[np.intp]) -> Palettes:
    n = mixed.shape[0]
    sizes = np.bincount(row, minlength=n)
    starts = np.cumsum(sizes) - sizes
    rank = np.arange(values.size, dtype=np.intp) - starts[row]
    index_type = np.uint8 if int(sizes.max()) <= 256 else np.uint16
    span = int(values.max()) + 1
    if n * span <= _LUT_LIMIT:
        # One gather through a stacked per-section id->index table beats n searchsorted calls.
        key_type = np.uint16 if n * span <= 1 << 16 else np.uint32
        offsets = (np.arange(n, dtype=np.intp) * span).astype(key_type)[:, None]
        keys = np.add(mixed, offsets, dtype=key_type)
        lut = np.zeros(n * span, dtype=index_type)
        lut[row * span + values] = rank
        local = lut.take(keys, mode="wrap")
    else:
        # Big ids (uint32 worlds): a per-section binary search keeps memory bounded.
        local = np.empty(mixed.shape, dtype=index_type)
        for r in range(n):
            local[r] = np.searchsorted(values[starts[r] : starts[r] + sizes[r]], mixed[r])
    return Palettes(values, row, rank, sizes, local)
