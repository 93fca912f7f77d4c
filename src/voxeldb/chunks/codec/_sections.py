"""Block array <-> sectioned body: per-section modes, palettes and index data.

Speed is the point of most choices here: every step is one numpy operation over all
sections that share a mode (never one per section or per block), indices are 4, 8 or 16
bits wide so packing is a reshape plus shifts, and decoding turns each packed byte into its
block values with a single gather from a stacked per-section byte lookup table.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._frame import DTYPES, MAX_HEIGHT
from voxeldb.chunks.codec._layout import (
    MODE_PAL16,
    MODE_PLAIN,
    MODE_UNIFORM,
    SECTION_BLOCKS,
    align4,
    layout,
)
from voxeldb.chunks.codec._palette import choose, pack
from voxeldb.errors import ChunkFormatError

Array = npt.NDArray[Any]

# Byte b of 4-bit index data holds indices b & 15 (first) and b >> 4 (second).
_SPLIT4: Final = np.stack((np.arange(256) & 15, np.arange(256) >> 4), axis=1)
_SPLIT4.flags.writeable = False
_MIN: Final = np.minimum.reduce
_MAX: Final = np.maximum.reduce


def as_sections(blocks: object) -> Array:
    """A valid block array as (sections, 4096) little-endian rows, or ChunkFormatError."""
    if not isinstance(blocks, np.ndarray):
        raise ChunkFormatError(f"chunk must be a numpy array, got {type(blocks).__name__}")
    if blocks.ndim != 3:
        raise ChunkFormatError(
            f"chunk must have 3 dimensions (height, 16, 16), got {blocks.ndim} "
            f"(shape {blocks.shape})"
        )
    height, depth, width = blocks.shape
    if (depth, width) != (16, 16):
        raise ChunkFormatError(
            f"chunk shape must be (height, 16, 16) indexed [y, z, x], got {blocks.shape}"
        )
    if height <= 0 or height % 16 or height > MAX_HEIGHT:
        raise ChunkFormatError(
            f"chunk height must be a positive multiple of 16 up to {MAX_HEIGHT}, got {height}"
        )
    dtype = blocks.dtype
    if dtype.kind != "u" or dtype.itemsize not in DTYPES:
        raise ChunkFormatError(f"chunk dtype must be uint16 or uint32, got {dtype}")
    # One contiguous little-endian copy at most; the common case is a no-op.
    return np.ascontiguousarray(blocks, dtype=DTYPES[dtype.itemsize]).reshape(
        height // 16, SECTION_BLOCKS
    )


def encode_sections(sections: Array) -> Array | None:
    """The sectioned body of ``sections`` as a uint8 array, or None where it would not beat
    the plain array."""
    nsec = sections.shape[0]
    # The ufuncs' own reductions: the array methods go through Python wrappers first.
    lowest = _MIN(sections, axis=1)
    highest = _MAX(sections, axis=1)
    is_mixed = lowest != highest
    mixed_rows = is_mixed.nonzero()[0]
    modes = np.zeros(nsec, dtype=np.uint8)
    choice = None
    if mixed_rows.size:
        n = mixed_rows.size
        first = int(mixed_rows[0])
        if int(mixed_rows[-1]) - first + 1 == n:
            mixed = sections[first : first + n]  # a view: terrain's mixed sections are one run
        else:
            mixed = sections.take(mixed_rows, axis=0)
        choice = choose(mixed, int(_MAX(highest, where=is_mixed, initial=0)))
        modes[mixed_rows] = choice.modes
    plan = layout(modes.tobytes(), sections.itemsize)
    pal = None if choice is None else choice.palettes
    slots = plan.fixed_slots
    base = plan.base
    pal16_sizes = None
    if plan.is16 is not None:
        assert pal is not None and pal.sizes is not None
        pal16_sizes = pal.sizes[plan.is16]
        base = base.copy()
        base[plan.is16] = slots + np.cumsum(pal16_sizes) - pal16_sizes
        slots += int(pal16_sizes.sum())
    table_size = plan.table_size
    data_start = align4(table_size + slots * sections.itemsize)
    size = data_start + plan.data_size
    if size >= sections.nbytes:  # noise: not worth building
        return None
    # One buffer, each part written in place: no joins, and the padding is already zero.
    body = np.zeros(size, dtype=np.uint8)
    body[:nsec] = modes
    if pal16_sizes is not None:
        body[align4(nsec) : table_size].view("<u4")[:] = pal16_sizes
    palettes = body[table_size : table_size + slots * sections.itemsize].view(sections.dtype)
    if plan.uniform is not None:
        palettes[: plan.uniform.size] = lowest[plan.uniform]
    if pal is not None:
        palettes[base[pal.row] + pal.rank] = pal.values
    for g in plan.groups:
        if g.mode == MODE_UNIFORM:
            continue
        at = data_start + g.data_off
        out = body[at : at + g.rows.size * g.nbytes].reshape(g.rows.size, -1)
        if g.mode == MODE_PLAIN:
            plain = sections[g.start : g.start + g.rows.size] if g.start >= 0 else sections[g.rows]
            out.view(sections.dtype)[...] = plain
        else:
            assert pal is not None and g.indexed is not None
            pack(pal.local[g.indexed], g.mode, pal.pairs, out)
    return body


def decode_sections(body: Any, nsec: int, dtype: np.dtype[Any], out: Array | None = None) -> Array:
    """The (sections, 4096) array of a sectioned body; ChunkFormatError if it is inconsistent.

    ``out``, if given, is a C-contiguous (sections, 4096) array of ``dtype`` to fill.
    """
    itemsize = dtype.itemsize
    body_size = len(body)
    if body_size < nsec:
        raise ChunkFormatError(
            f"corrupt chunk: body of {body_size} bytes is shorter than its mode table"
        )
    plan = layout(bytes(body[:nsec]), itemsize)
    slots = plan.fixed_slots
    pal16_sizes = None
    if plan.n16:
        off = align4(nsec)
        if body_size < off + 4 * plan.n16:
            raise ChunkFormatError("corrupt chunk: body too short for its 16-bit palette lengths")
        pal16_sizes = np.frombuffer(body, dtype="<u4", count=plan.n16, offset=off).astype(np.intp)
        if int(pal16_sizes.min()) < 1 or int(pal16_sizes.max()) > 1 << 16:
            raise ChunkFormatError("corrupt chunk: 16-bit palette length out of range 1..65536")
        slots += int(pal16_sizes.sum())
    data_start = align4(plan.table_size + slots * itemsize)
    if data_start + plan.data_size != body_size:
        raise ChunkFormatError(
            f"corrupt chunk: section table implies a body of {data_start + plan.data_size} "
            f"bytes, header says {body_size}"
        )
    raw = np.frombuffer(body, dtype=np.uint8)
    palettes = np.frombuffer(body, dtype=dtype, count=slots, offset=plan.table_size)
    if out is None:
        out = np.empty((nsec, SECTION_BLOCKS), dtype=dtype)
    for g in plan.groups:
        mode = g.mode
        n = g.rows.size
        at = data_start + g.data_off
        if mode == MODE_UNIFORM:
            values = palettes[:n, None]
        elif mode <= 8:
            # Byte b of the k-th section of the group is entry 256 k + b of a stacked table
            # of what that byte expands to (1 value, or 2 for mode 4, as one wider item):
            # one gather decodes the whole group (a run of sections at a time).
            idx = np.bitwise_or(raw[at : at + n * g.nbytes].reshape(n, g.nbytes), g.row16)
            table = palettes[g.pal_off : g.pal_off + (n << mode)]
            if mode == 4:
                table = table.reshape(n, 16).take(_SPLIT4, axis=1).view(g.wide).reshape(-1)
            for start, first, count in g.runs:
                target = out[start : start + count].view(table.dtype)
                table.take(idx[first : first + count], out=target, mode="wrap")
            continue
        elif mode == MODE_PAL16:
            assert pal16_sizes is not None
            idx = np.frombuffer(body, dtype="<u2", count=n * SECTION_BLOCKS, offset=at)
            idx = idx.reshape(n, SECTION_BLOCKS)
            over = idx.max(axis=1) >= pal16_sizes
            if over.any():
                sec = int(g.rows[np.flatnonzero(over)[0]])
                raise ChunkFormatError(
                    f"corrupt chunk: palette index out of range in section {sec}"
                )
            starts = np.cumsum(pal16_sizes) - pal16_sizes + g.pal_off
            values = palettes.take(idx + starts[:, None], mode="wrap")
        else:
            values = np.frombuffer(body, dtype=dtype, count=n * SECTION_BLOCKS, offset=at)
            values = values.reshape(n, SECTION_BLOCKS)
        for start, first, count in g.runs:
            out[start : start + count] = values[first : first + count]
    return out
