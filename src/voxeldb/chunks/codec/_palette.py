"""Encoder side of the sections: each section's palette, mode and packed indices.

Every step is one numpy operation over all the chunk's non-uniform sections at once (no
loop over sections or blocks), and every path gives the same bytes (the tests check by
switching each one off). :func:`choose` takes the first that applies:

1. **Small ids** (all below :data:`SMALL_IDS`, generated terrain): per-section presence bit
   masks of the ids, and one gather that maps two neighbouring blocks straight to their
   packed byte.
2. **Presence table** (sections x id span at most :data:`PRESENT_LIMIT`: worlds of a few
   hundred states, such as real Minecraft chunks): one scatter of every block into a stacked
   (section, id) presence table gives all palettes in order, its running count the id ->
   index table of every section, and one gather the indices. Real terrain's short runs (ores,
   caves, stone variants) make the paths below, which start from run starts, slower there.
3. **Known ids**: each thread remembers the ids (at most 63) of the chunks it encoded last
   and their id -> number table; a world's chunks share most of their ids, so a chunk whose
   ids are all known is numbered by one gather and goes the bit-mask way of 1. An id the
   table does not know gets the masks' top bit, which sends the chunk on to 4.
4. **Run starts.** Every id of a section first appears where the block before it differs
   (or at the section's start), so with long runs palettes are found from those few
   thousand positions: with at most :data:`FEW_IDS` ids in the chunk they are numbered
   (and remembered for 3) and go the bit-mask way; with more, the (section, id) pairs at the
   run starts, made unique by one sort, are all the palettes in order. Short runs (noise):
   a sort of every section instead, sparing sections that stay plain. Indices then by one
   gather through a stacked per-section id -> index table (ids too large for such a table,
   uint32 worlds: one binary search of the sorted pairs).
"""

from __future__ import annotations

import sys
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
# Per thread: the ids of the chunks encoded last (fewer than FEW_IDS, sorted), their
# id -> number table and the mask width they need. Only a shortcut: the bytes never depend
# on it (tests check).
_known = threading.local()
# Past this share of run starts among the blocks (noise), palettes come from sorting whole
# sections instead. Read at each call: tests set 0 (always sort) or 2 (never).
NOISY_RUNS = 0.125
# The largest stacked id -> index table (sections x id span entries, one byte each mostly;
# its pages are only touched where ids are). Past it: binary search. Read at each call.
TABLE_LIMIT = 1 << 22

# Chunks whose sections x id span is at most this find palettes and indices through one
# stacked presence table. Read at each call; a test sets it to 0 to force the other paths.
PRESENT_LIMIT = 1 << 15

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
# Palette size modulo 256 (a uint8 running count) -> mode, for palettes of at most 256.
_MODES_BY_COUNT8: Final = _MODES_U16[:256].copy()
_MODES_BY_COUNT8[0] = 8
# Section k's row of a stacked (section, id) table starts at k * span.
_ROW_STEPS16: Final = np.arange(MAX_SECTIONS, dtype=np.uint16)[:, None]
_ROW_STEPS32: Final = np.arange(MAX_SECTIONS, dtype=np.uint32)[:, None]
_LITTLE: Final = sys.byteorder == "little"
_ONE32: Final = np.uint32(1)
_ONE64: Final = np.uint64(1)
# Bit masks of the codes below 0, 1, 2, ... (32 and 64 bits).
_BELOW32: Final = (_ONE32 << np.arange(32, dtype=np.uint32)) - _ONE32
_BELOW64: Final = (_ONE64 << np.arange(64, dtype=np.uint64)) - _ONE64
# (section, id0, id1) -> one key into the stacked pair tables of the bit-mask path.
_ROW1024: Final = (np.arange(MAX_SECTIONS, dtype=np.uint32) << 10)[:, None]
_ROW4096: Final = (np.arange(MAX_SECTIONS, dtype=np.uint32) << 12)[:, None]
_SECTION_STARTS: Final = np.arange(MAX_SECTIONS, dtype=np.intp) * SECTION_BLOCKS
# Shared by every thread: make accidental writes fail loudly.
for _table in (
    _MODES_U16,
    _MODES_U32,
    _MODES_BY_COUNT8,
    _BELOW32,
    _BELOW64,
    _ROW_STEPS16,
    _ROW_STEPS32,
    _ROW1024,
    _ROW4096,
    _SECTION_STARTS,
):
    _table.flags.writeable = False


class Palettes(NamedTuple):
    """The palettes of some sections (rows of ``mixed``) and every block's index into its own."""

    values: Array  # all palettes, row by row, each in increasing order
    row: npt.NDArray[np.intp]  # the row each palette entry belongs to
    rank: Array  # each entry's index in its palette
    sizes: npt.NDArray[np.intp] | None  # palette sizes (None: no 16-bit palettes)
    local: Array  # (rows, 4096) indices, or (rows, 2048) keys into ``pairs``
    # For pair keys: the stacked per-section table of what two neighbouring blocks pack to.
    pairs: Array | None = None


class Choice(NamedTuple):
    """What the encoder does with each non-uniform section."""

    palettes: Palettes | None  # of the sections that are not plain (mode 255), if any
    modes: npt.NDArray[np.uint8]  # one per non-uniform section


def choose(mixed: Array, top: int) -> Choice:
    """Palettes and modes of the non-uniform sections ``mixed`` (rows of 4096 ids).

    No id in ``mixed`` is above ``top``; the closer it is, the better the path chosen.
    """
    wide = mixed.itemsize == 4
    modes_by_size = _MODES_U32 if wide else _MODES_U16
    if top < SMALL_IDS:
        return _bit_masks(mixed, None, modes_by_size, _masks(mixed, 5), 5)
    if mixed.shape[0] * (top + 1) <= PRESENT_LIMIT:
        return _choose_present(mixed, top + 1, modes_by_size)
    known: Array | None = getattr(_known, "ids", None)
    if known is not None and known.dtype == mixed.dtype and top <= _known.top:
        # The ids of the chunks before, if they cover this one's: no need to find its ids.
        # Ids it does not know all get the code of the masks' top bit, unused otherwise.
        codes = _known.table.take(mixed)
        bits = _known.bits
        masks = _masks(codes, bits)
        if not int(np.bitwise_or.reduce(masks)) >> ((1 << bits) - 1):
            return _bit_masks(codes, known, modes_by_size, masks, bits)
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
            codes = np.searchsorted(ids, mixed).astype("<u2")
            at_codes = np.searchsorted(ids, at_ids).astype(np.uint16)
        # Each section's ids are those at its run starts: its bit mask needs only those.
        bits = 5 if ids.size <= 32 else 6
        one = _ONE32 if bits == 5 else _ONE64
        section_runs = np.searchsorted(at, _SECTION_STARTS[: mixed.shape[0]])
        masks = np.bitwise_or.reduceat(np.left_shift(one, at_codes, dtype=one.dtype), section_runs)
        return _bit_masks(codes, ids, modes_by_size, masks, bits)
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
            return Choice(None, modes)
        keep_entry = ~plain[row]
        values = values[keep_entry]
        row = np.searchsorted(kept, row[keep_entry])  # renumbered among the kept sections
        sizes = sizes[kept]
        mixed = mixed[kept]
    pal = _index(mixed, values, row, sizes, top)
    return Choice(pal, modes)


def _choose_present(mixed: Array, span: int, modes_by_size: npt.NDArray[np.uint8]) -> Choice:
    """Ids below ``span`` (few sections x span in all): a stacked (section, id) presence
    table, filled by one scatter of every block, holds all palettes in order, and its
    running count is the id -> index table of every section for one gather.

    Unlike the other paths it needs no run starts, which real terrain (short runs of ores,
    caves and stone variants) has too many of to be cheap."""
    n = mixed.shape[0]
    # Added in the ids' own width (no casting inside the ufunc), then widened in one pass:
    # faster than adding into intp, which the scatter and the gather both want.
    steps = _ROW_STEPS16 if n * span < 1 << 16 and mixed.itemsize == 2 else _ROW_STEPS32
    keys = np.add(mixed, steps[:n] * span).astype(np.intp)
    present = np.zeros((n, span), dtype=bool)
    present.reshape(-1)[keys] = True
    counts = present.view(np.uint8)  # summed as bytes: a bool sum would cast as it goes
    sizes = None
    if span <= 256:  # no palette is larger than 256: one byte per index
        index_of = np.add.accumulate(counts, axis=1, dtype=np.uint8)
        modes = _MODES_BY_COUNT8.take(index_of[:, -1])
    else:
        index_of = np.add.accumulate(counts, axis=1, dtype=np.uint16)
        sizes = index_of[:, -1].astype(np.intp)
        modes = modes_by_size.take(sizes)
    index_of -= 1
    kept_index = index_of
    if sizes is not None:
        plain = modes == MODE_PLAIN
        if plain.any():
            # Sections past the palette limit stay plain: spare them (noise) the rest.
            kept = np.flatnonzero(~plain)
            if not kept.size:
                return Choice(None, modes)
            keys, present, sizes, kept_index = (
                keys[kept],
                present[kept],
                sizes[kept],
                index_of[kept],
            )
    row, values = present.nonzero()  # rows numbered among the kept sections
    rank = kept_index[row, values]
    local = index_of.reshape(-1).take(keys)  # the keys still name rows of the whole table
    return Choice(Palettes(values, row, rank, sizes, local), modes)


def _remember(ids: Array, known: Array | None) -> tuple[Array, Array]:
    """The ids to number blocks by (``ids``, with the thread's known ids if together they
    are still few) and their id -> number table, which the thread keeps for the next chunk:
    a world's chunks share most of their ids.

    Unknown ids map to the top code of the masks (31, or 63 past 31 ids), so that a chunk
    with an id the table does not know shows it in its masks. With 64 ids there is no room
    for that: the table serves this chunk only."""
    if known is not None and known.dtype == ids.dtype:
        both = _sorted_unique(np.concatenate((known, ids)))
        if both.size < FEW_IDS:
            ids = both
    bits = 5 if ids.size < 32 else 6
    # Little-endian like the blocks, so that two neighbouring codes read as one word.
    table = np.full(int(ids[-1]) + 1, (1 << bits) - 1, dtype="<u2")
    table[ids] = np.arange(ids.size, dtype=np.uint16)
    if ids.size < FEW_IDS:
        ids.flags.writeable = False
        table.flags.writeable = False
        _known.ids, _known.table, _known.top, _known.bits = ids, table, int(ids[-1]), bits
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


def pack(local: Array, width: int, pairs: Array | None, out: Array) -> None:
    """Write indices (n, 4096), or keys (n, 2048) into the pair table ``pairs``, as
    width-bit streams into ``out`` (uint8, n rows of 512 * width bytes)."""
    if pairs is not None:
        # A pair code is one byte of a 4-bit section and two (little-endian) of an 8-bit one.
        target = out if width == 4 else out.view("<u2")
        if pairs.dtype == target.dtype:
            pairs.take(local, out=target, mode="wrap")
        else:
            target[...] = pairs.take(local, mode="wrap")
    elif width == 4:
        # Each little-endian word holds two neighbouring indices: fold the second down next
        # to the first (contiguous whole-word steps are far faster than strided bytes).
        both = np.ascontiguousarray(local).view("<u2" if local.itemsize == 1 else "<u4")
        folded = both >> (8 * local.itemsize - 4)
        folded |= both
        np.copyto(out, folded, casting="unsafe")
    elif width == 8:
        np.copyto(out, local, casting="unsafe")
    else:
        out.view("<u2")[...] = local


def _masks(codes: Array, bits: int) -> Array:
    """Each section's presence mask of its codes (below 2 ** bits, 5 or 6)."""
    one = _ONE32 if bits == 5 else _ONE64
    # Widened first: a shift that casts as it goes is slower than a cast, then a shift.
    masks: Array = np.bitwise_or.reduce(np.left_shift(one, codes.astype(one.dtype)), axis=1)
    return masks


def _bit_masks(
    codes: Array, ids: Array | None, modes_by_size: npt.NDArray[np.uint8], masks: Array, bits: int
) -> Choice:
    """Sections of ids (``ids`` None) or codes (ranks among ``ids``) below ``2 ** bits``:
    one bit per code, OR-ed over each section (``masks``), beats sorting.

    ``local`` then holds pair codes: for blocks 2j and 2j+1, ``i0 | i1 << width``, looked up
    in one gather from a per-section table indexed by both codes, which halves the gather and
    for 4-bit sections already is the packed byte.
    """
    n = codes.shape[0]
    # index_of[r, c] = index of code c in section r's palette (where present): the number
    # of codes below c present in r.
    index_of = np.bitwise_count(masks[:, None] & (_BELOW32 if bits == 5 else _BELOW64))
    modes = modes_by_size.take(np.bitwise_count(masks))
    le_masks = masks if _LITTLE else masks.byteswap()
    present = np.unpackbits(le_masks.view(np.uint8).reshape(n, -1), axis=1, bitorder="little")
    row, values = present.nonzero()
    rank = index_of[row, values]
    # Pair codes of 8-bit sections take two bytes; with only 4-bit ones the table is bytes,
    # which the gather writes straight into the body.
    if int(np.maximum.reduce(modes)) > 4:
        index_of = index_of.astype(np.uint16)
    pair_codes = np.bitwise_or(
        index_of[:, None, :], np.left_shift(index_of, modes[:, None])[:, :, None]
    ).reshape(-1)
    # Two neighbouring codes in one little-endian word -> c0 | c1 << bits | r << 2 bits.
    word = codes.view("<u4" if codes.itemsize == 2 else "<u8")
    keys = word >> (8 * codes.itemsize - bits)
    keys |= word
    keys &= (1 << 2 * bits) - 1
    keys |= _ROW1024[:n] if bits == 5 else _ROW4096[:n]
    if ids is not None:
        values = ids.take(values)
    return Choice(Palettes(values, row, rank, None, keys, pair_codes), modes)
