"""Encoder side of the sections: each section's palette, mode and packed indices.

One path for any ids, palette sizes and both dtypes, every step one numpy operation over
all sections at once (no loop over sections or blocks):

1. **Run starts.** Every id of a section first appears where the block before it differs
   (or at the section's start), and neighbouring blocks are mostly equal, so palettes are
   found from those few thousand positions only.
2. **Palettes.** With at most :data:`FEW_IDS` distinct ids in the chunk (most terrain),
   the ids are numbered 0.. in order and go the bit-mask way: per-section presence masks,
   and one gather that maps two neighbouring blocks straight to their packed byte (ids
   already below :data:`SMALL_IDS` skip the numbering). With more, the (section, id) pairs
   at the run starts, made unique by one sort, are all the palettes in order; if runs are
   short (noise), a sort of every section instead, sparing sections that stay plain.
3. **Indices** by one gather through a stacked per-section id -> index table (ids too
   large for such a table, uint32 worlds: one binary search of the sorted pairs).

Each thread remembers the (at most 64) ids of the chunks it encoded last and their
id -> number table: a world's chunks share most of their ids, so a chunk whose ids are all
known skips step 1 and goes straight to the bit masks.

All choices give the same bytes; the tests check by switching each one off.
"""

from __future__ import annotations

import threading
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._layout import MAX_SECTIONS, MODE_PLAIN, SECTION_BLOCKS

Array = npt.NDArray[Any]

# Ids below this take the bit-mask shortcut (one u32 bit per id) as they are. Read at each
# call, so a test can set it to 0 to force the other paths.
SMALL_IDS = 32
# Chunks with at most this many distinct ids take it too, numbered 0.. in order first
# (one u64 bit each). Read at each call; a test sets it to 0 to force the general path.
FEW_IDS = 64
# Chunks whose ids are all below this number their blocks through a table (2 bytes per id)
# that the thread keeps; others by binary search. Read at each call.
REMEMBERED_IDS = 1 << 17
# Per thread: the ids of the chunks encoded last (at most FEW_IDS, sorted) and their
# id -> number table. Only a shortcut: the bytes never depend on it (tests check).
_known = threading.local()
# Past this share of run starts among the blocks (noise), palettes come from sorting whole
# sections instead. Read at each call: tests set 0 (always sort) or 2 (never).
NOISY_RUNS = 0.125
# The largest stacked id -> index table (sections x id span entries, one byte each mostly;
# its pages are only touched where ids are). Past it: binary search. Read at each call.
TABLE_LIMIT = 1 << 22

# A 16-bit palette section stores 4 + 4p + 8192 bytes; it is used only while that is less
# than the plain section (16384 bytes of uint32), i.e. p <= 2046.
_MAX_P16: Final = 2046


def _mode_table(max16: int) -> npt.NDArray[np.uint8]:
    """Palette size (0..4096) -> section mode: the narrowest index width that holds it."""
    sizes = np.arange(SECTION_BLOCKS + 1)
    bounds = np.array((16, 256, max16))
    return np.array((4, 8, 16, MODE_PLAIN), dtype=np.uint8)[np.searchsorted(bounds, sizes)]


_MODES_U16: Final = _mode_table(256)  # a 16-bit palette never beats plain uint16
_MODES_U32: Final = _mode_table(_MAX_P16)
_ONE32: Final = np.uint32(1)
_ONE64: Final = np.uint64(1)
# (section, id0, id1) -> one key into the stacked pair tables of the bit-mask path.
_ROW1024: Final = (np.arange(MAX_SECTIONS, dtype=np.uint32) << 10)[:, None]
_ROW4096: Final = (np.arange(MAX_SECTIONS, dtype=np.uint32) << 12)[:, None]
_SECTION_STARTS: Final = np.arange(MAX_SECTIONS, dtype=np.intp) * SECTION_BLOCKS
# Shared by every thread: make accidental writes fail loudly.
for _table in (_MODES_U16, _MODES_U32, _ROW1024, _ROW4096, _SECTION_STARTS):
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

    ``highest`` is each row's largest id.
    """
    wide = mixed.itemsize == 4
    modes_by_size = _MODES_U32 if wide else _MODES_U16
    top = int(highest.max())
    if top < SMALL_IDS:
        small = _palettes_small(mixed, modes_by_size, 5)
        return Choice(small, modes_by_size.take(small.sizes), None)
    known: Array | None = getattr(_known, "ids", None)
    if known is not None and known.dtype == mixed.dtype and top <= int(known[-1]):
        # The ids of the chunks before, if they cover this one's: no need to find its ids.
        codes = _known.table.take(mixed)
        if int(codes.max()) < known.size:
            return _choose_few(codes, known, modes_by_size, None)
    limit = _MAX_P16 if wide else 256  # sections with more ids stay plain
    starts = _run_starts(mixed)
    noisy = np.count_nonzero(starts) > mixed.size * NOISY_RUNS  # short runs: sort sections
    at = None if noisy else np.flatnonzero(starts)
    at_ids = None if at is None else mixed.reshape(-1).take(at)
    ids = None if at_ids is None else _sorted_unique(at_ids)
    if at is not None and at_ids is not None and ids is not None and ids.size <= FEW_IDS:
        # Few distinct ids: number them 0..63 in order and take the bit-mask path.
        if top < REMEMBERED_IDS:
            ids, table = _remember(ids, known)
            codes, at_codes = table.take(mixed), table.take(at_ids)
        else:
            codes = np.searchsorted(ids, mixed).astype(np.uint16)
            at_codes = np.searchsorted(ids, at_ids).astype(np.uint16)
        # Each section's ids are those at its run starts: its bit mask needs only those.
        one = _ONE32 if ids.size <= 32 else _ONE64
        section_runs = np.searchsorted(at, _SECTION_STARTS[: mixed.shape[0]])
        masks = np.bitwise_or.reduceat(np.left_shift(one, at_codes, dtype=one.dtype), section_runs)
        return _choose_few(codes, ids, modes_by_size, masks)
    if at is None:
        values, row, sizes = _palettes_sorted(mixed, limit)
    else:
        values, row, sizes = _palettes_from_runs(mixed, at)
    modes = modes_by_size.take(sizes)
    # Sections past the palette limit stay plain; the others all take a palette.
    plain = modes == MODE_PLAIN
    if plain.any():
        kept = np.flatnonzero(~plain)
        if not kept.size:
            return Choice(None, modes, plain)
        keep_entry = ~plain[row]
        values = values[keep_entry]
        row = np.searchsorted(kept, row[keep_entry])  # renumbered among the kept sections
        sizes = sizes[kept]
        mixed = mixed[kept]
    pal = _index(mixed, values, row, sizes, top)
    return Choice(pal, modes, plain if plain.any() else None)


def _choose_few(
    codes: Array, ids: Array, modes_by_size: npt.NDArray[np.uint8], masks: Array | None
) -> Choice:
    """The bit-mask path for blocks numbered by their rank among ``ids`` (at most 64)."""
    small = _palettes_small(codes, modes_by_size, 5 if ids.size <= 32 else 6, masks)
    small = small._replace(values=ids.take(small.values))
    return Choice(small, modes_by_size.take(small.sizes), None)


def _remember(ids: Array, known: Array | None) -> tuple[Array, Array]:
    """The ids to number blocks by (``ids``, with the thread's known ids if together they
    are still few) and their id -> number table, which the thread keeps for the next chunk:
    a world's chunks share most of their ids. Unknown ids map to 0xFFFF."""
    if known is not None and known.dtype == ids.dtype:
        both = _sorted_unique(np.concatenate((known, ids)))
        if both.size <= FEW_IDS:
            ids = both
    table = np.full(int(ids[-1]) + 1, 0xFFFF, dtype=np.uint16)
    table[ids] = np.arange(ids.size, dtype=np.uint16)
    ids.flags.writeable = False
    table.flags.writeable = False
    _known.ids, _known.table = ids, table
    return ids, table


def _run_starts(mixed: Array) -> npt.NDArray[np.bool_]:
    """Where (in ``mixed`` flattened) a section starts or an id differs from the one before:
    every id of a section is at one of them."""
    flat = mixed.reshape(-1)
    starts = np.empty(flat.size, dtype=bool)
    np.not_equal(flat[1:], flat[:-1], out=starts[1:])
    starts[::SECTION_BLOCKS] = True
    return starts


def _sorted_unique(values: Array) -> Array:
    """``np.unique``, faster: numpy 2.3+ hashes first; a stable sort of 16-bit values is a
    radix sort, and of keys already grouped by section a merge of runs."""
    values = np.sort(values, kind="stable")
    first = np.empty(values.size, dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return values[first]


def _palettes_from_runs(
    mixed: Array, at: npt.NDArray[np.intp]
) -> tuple[Array, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All palettes (each sorted, section by section), each entry's section, and the sizes,
    from the (section, id) pairs at the run starts ``at``."""
    n = mixed.shape[0]
    flat = mixed.reshape(-1)
    shift = 8 * mixed.itemsize  # (section, id) as one key: section above the id's bits
    key_type = np.uint32 if mixed.itemsize == 2 else np.uint64
    keys: Array = (at >> 12).astype(key_type)
    keys <<= key_type(shift)
    keys |= flat.take(at)
    pairs = _sorted_unique(keys)
    row = (pairs >> shift).astype(np.intp)
    values = pairs.astype(mixed.dtype)  # the low bits: the id
    return values, row, np.bincount(row, minlength=n)


def _palettes_sorted(
    mixed: Array, limit: int
) -> tuple[Array, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """What :func:`_palettes_from_runs` gives, by sorting every section (noise: runs are
    short, and a sort of each row beats one of (section, id) keys), except that sections
    with more than ``limit`` ids (to stay plain) get their size but no entries."""
    ordered = np.sort(mixed, axis=1, kind="stable" if mixed.itemsize == 2 else None)
    first = np.empty(ordered.shape, dtype=bool)
    first[:, 0] = True
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=first[:, 1:])
    sizes = np.count_nonzero(first, axis=1)
    over = sizes > limit
    if over.any():
        first[over] = False  # spare noise the costly extraction
    pos = np.flatnonzero(first)
    return ordered.reshape(-1).take(pos), pos >> 12, sizes


def _index(
    mixed: Array, values: Array, row: npt.NDArray[np.intp], sizes: npt.NDArray[np.intp], top: int
) -> Palettes:
    """Every block's index into its section's palette (``values`` / ``row``, sorted)."""
    n = mixed.shape[0]
    firsts = np.cumsum(sizes) - sizes
    rank = np.arange(values.size, dtype=np.intp) - firsts[row]
    index_type = np.uint8 if int(sizes.max()) <= 256 else np.uint16
    span = top + 1
    if n * span <= TABLE_LIMIT:
        # One gather through a stacked per-section id -> index table.
        key_type = np.uint32 if n * span < 1 << 32 else np.uint64
        offsets = (np.arange(n, dtype=np.intp) * span).astype(key_type)[:, None]
        keys = np.add(mixed, offsets, dtype=key_type)
        table = np.zeros(n * span, dtype=index_type)
        table[row * span + values] = rank
        local = table.take(keys, mode="wrap")
    else:
        # Ids too large for a table: one binary search of (section, id) keys.
        shift = np.uint64(8 * mixed.itemsize)
        sections = np.arange(n, dtype=np.uint64)[:, None] << shift
        keys = np.bitwise_or(mixed, sections, dtype=np.uint64)
        entries = np.bitwise_or(values, row.astype(np.uint64) << shift, dtype=np.uint64)
        found = np.searchsorted(entries, keys)
        found -= firsts[:, None]
        local = found.astype(index_type)
    return Palettes(values, row, rank, sizes, local)


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


def _palettes_small(
    mixed: Array, modes_by_size: npt.NDArray[np.uint8], bits: int, masks: Array | None = None
) -> Palettes:
    """Ids (or codes) below 64: one bit per id, OR-ed over each section, beats sorting.

    ``local`` then holds pair codes: for blocks 2j and 2j+1, ``i0 | i1 << width``, looked up
    in one gather from a per-section table indexed by both ids, which halves the gather and
    for 4-bit sections already is the packed byte. Ids are below ``1 << bits`` (5 or 6);
    ``masks``, if given, are the sections' presence masks (u32 or u64 by ``bits``).
    """
    n = mixed.shape[0]
    if masks is None:
        one = _ONE32 if bits == 5 else _ONE64
        masks = np.bitwise_or.reduce(np.left_shift(one, mixed, dtype=one.dtype), axis=1)
    mask_bytes = masks.astype("<u4" if bits == 5 else "<u8").view(np.uint8).reshape(n, -1)
    present = np.unpackbits(mask_bytes, axis=1, bitorder="little")
    row, values = np.nonzero(present)
    sizes = np.bincount(row, minlength=n)
    # index_of[r, id] = index of id in section r's palette (where present).
    index_of = np.cumsum(present, axis=1, dtype=np.uint16)
    index_of -= 1
    rank = index_of[row, values]
    width = modes_by_size.take(sizes).astype(np.uint16)
    pair_codes = index_of[:, None, :] | (index_of[:, :, None] << width[:, None, None])
    # Two neighbouring ids in one little-endian word -> id0 | id1 << bits | r << 2 bits.
    word = mixed.view("<u4" if mixed.itemsize == 2 else "<u8")
    keys = word >> (8 * mixed.itemsize - bits)
    keys |= word
    keys &= (1 << 2 * bits) - 1
    keys |= _ROW1024[:n] if bits == 5 else _ROW4096[:n]
    local = pair_codes.reshape(-1).take(keys, mode="wrap")
    return Palettes(values, row, rank, sizes, local, True)
