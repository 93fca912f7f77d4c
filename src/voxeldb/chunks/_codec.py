"""Chunk codec: ``(height, 16, 16)`` block arrays <-> compact bytes.

The byte layout is specified in ``docs/chunk-format.md``; keep the two in step. Speed is the
point of most choices below: every step is one numpy operation over all sections that share
a layout (never one per section or per block), indices are 4, 8 or 16 bits wide so packing
is a reshape plus shifts, and decoding turns each packed byte into its block values with a
single gather from a stacked per-section byte lookup table. Chunks whose ids are all below
32 (generated terrain) take a faster encoder path: per-section presence bit masks instead of
a sort, and one gather that maps two neighbouring blocks straight to their packed byte.
The bytes are identical either way (a test checks; the golden files pin them).
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from typing import Any, Final, NamedTuple

import lz4.block
import numpy as np
import numpy.typing as npt

from voxeldb.errors import ChunkFormatError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_HEIGHT",
    "decode_chunk",
    "encode_chunk",
]

MAGIC: Final = b"VXCK"
FORMAT_VERSION: Final = 1
MAX_HEIGHT: Final = 4096
SECTION_BLOCKS: Final = 4096

FLAG_LZ4: Final = 0x01
FLAG_PLAIN: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_LZ4 | FLAG_PLAIN

# magic, version, dtype code (= item size), flags, reserved, height, body size, payload size
_HEADER = struct.Struct("<4sBBBBIII")
_CRC = struct.Struct("<I")
HEADER_SIZE: Final = _HEADER.size + _CRC.size

# Section modes: uniform (0); a palette of 16 or 256 entries with 4- or 8-bit indices; a
# palette with its own length and 16-bit indices; or the plain values. Widths 1 and 2 would
# save little after LZ4 (a few 2-state sections per chunk) and cost a decode pass each.
MODE_PLAIN: Final = 255
_MODE_ORDER: Final = (0, 4, 8, 16, MODE_PLAIN)

_DTYPES: Final[dict[int, np.dtype[Any]]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

# A 16-bit palette section stores 4 + 4p + 8192 bytes; it is used only while that is less
# than the plain section (16384 bytes of uint32), i.e. p <= 2046.
_MAX_P16: Final = 2046
# Past this many (section, id) slots the encoder's id->index table is not worth allocating.
_LUT_LIMIT: Final = 1 << 18


def _mode_table(max16: int) -> npt.NDArray[np.uint8]:
    """Palette size (0..4096) -> section mode: the narrowest index width that holds it."""
    p = np.arange(SECTION_BLOCKS + 1)
    bounds = np.array((16, 256, max16))
    return np.array((4, 8, 16, MODE_PLAIN), dtype=np.uint8)[np.searchsorted(bounds, p)]


_CODES16: Final = _mode_table(256)  # uint16: a 16-bit palette never beats plain
_CODES32: Final = _mode_table(_MAX_P16)
# Ids below this take the bit-mask encoder path (one u32 bit per id).
_SMALL_IDS = 32
_ONE32: Final = np.uint32(1)
_ROW1024: Final = (np.arange(MAX_HEIGHT // 16, dtype=np.uint32) << 10)[:, None]


# Byte b of 4-bit index data holds indices b & 15 (first) and b >> 4 (second).
_SPLIT4: Final = np.stack((np.arange(256) & 15, np.arange(256) >> 4), axis=1)


# Row offsets that turn a section's bytes into rows of a stacked (n * 256) lookup table.
_ROW16: Final = (np.arange(MAX_HEIGHT // 16, dtype=np.uint16) << 8)[:, None]
# Shared by every thread and cached plan: make accidental writes fail loudly.
for _table in (_CODES16, _CODES32, _ROW1024, _ROW16, _SPLIT4):
    _table.flags.writeable = False


def _err(msg: str) -> ChunkFormatError:
    return ChunkFormatError(msg)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _index_bytes(mode: int, itemsize: int) -> int:
    if mode == MODE_PLAIN:
        return SECTION_BLOCKS * itemsize
    return SECTION_BLOCKS * mode // 8


# ---------------------------------------------------------------------------------- encode


def _validate(blocks: object) -> npt.NDArray[Any]:
    if not isinstance(blocks, np.ndarray):
        raise _err(f"chunk must be a numpy array, got {type(blocks).__name__}")
    if blocks.ndim != 3:
        raise _err(
            f"chunk must have 3 dimensions (height, 16, 16), got {blocks.ndim} "
            f"(shape {blocks.shape})"
        )
    height, dz, dx = blocks.shape
    if (dz, dx) != (16, 16):
        raise _err(f"chunk shape must be (height, 16, 16) indexed [y, z, x], got {blocks.shape}")
    if height <= 0 or height % 16 or height > MAX_HEIGHT:
        raise _err(
            f"chunk height must be a positive multiple of 16 up to {MAX_HEIGHT}, got {height}"
        )
    dt = blocks.dtype
    if dt.kind != "u" or dt.itemsize not in _DTYPES:
        raise _err(f"chunk dtype must be uint16 or uint32, got {dt}")
    # One contiguous little-endian copy at most; the common case is a no-op.
    return np.ascontiguousarray(blocks, dtype=_DTYPES[dt.itemsize]).reshape(
        height // 16, SECTION_BLOCKS
    )


def _pack(local: npt.NDArray[Any], w: int) -> npt.NDArray[Any]:
    """Pack indices (n, 4096) into w-bit little-endian bit streams, (n, 512 * w) bytes."""
    if w == 16:
        return local.astype("<u2", copy=False)
    if local.dtype != np.uint8:
        local = local.astype(np.uint8)
    if w == 8:
        return local
    # w == 4: each little-endian u16 holds two indices in its two bytes; fold the high one down.
    x: npt.NDArray[Any] = np.ascontiguousarray(local).view("<u2")
    packed: npt.NDArray[np.uint8] = (x | (x >> 4)).astype(np.uint8)
    return packed


class _Palettes(NamedTuple):
    """The palettes of some sections (rows of ``nu``) and every block's index into its own."""

    pal: npt.NDArray[Any]  # all palettes, row by row, each in increasing order
    row: npt.NDArray[np.intp]  # the row each palette entry belongs to
    rank: npt.NDArray[Any]  # each entry's index in its palette
    p: npt.NDArray[np.intp]  # palette sizes
    local: npt.NDArray[Any]  # (rows, 4096) indices, or (rows, 2048) pair codes
    pairs: bool = False


def _palettes_small(nu: npt.NDArray[Any], codes: npt.NDArray[np.uint8]) -> _Palettes:
    """Ids below 32 (natural terrain): one bit per id, OR-ed over each section, beats sorting.

    ``local`` then holds pair codes: for blocks 2j and 2j+1, ``i0 | i1 << w``, looked up in
    one gather from a per-section table indexed by both ids, which halves the gather and
    for 4-bit sections already is the packed byte.
    """
    n = nu.shape[0]
    masks = np.bitwise_or.reduce(np.left_shift(_ONE32, nu, dtype=np.uint32), axis=1)
    present = np.unpackbits(
        masks.astype("<u4").view(np.uint8).reshape(n, 4), axis=1, bitorder="little"
    )
    row, pal = np.nonzero(present)
    p = np.bincount(row, minlength=n)
    # table[r, id] = index of id in section r's palette (where present).
    table = np.cumsum(present, axis=1, dtype=np.uint16)
    table -= 1
    rank = table[row, pal]
    width = codes.take(p).astype(np.uint16)
    pairs = table[:, None, :] | (table[:, :, None] << width[:, None, None])  # [r, id1, id0]
    # Two neighbouring ids in one little-endian word -> id0 | id1 << 5 | r << 10.
    word = nu.view("<u4" if nu.itemsize == 2 else "<u8")
    keys = word >> (8 * nu.itemsize - 5)
    keys |= word
    keys &= 1023
    keys |= _ROW1024[:n]
    return _Palettes(pal, row, rank, p, pairs.reshape(-1).take(keys, mode="wrap"), True)


def _pack_pairs(pairs: npt.NDArray[np.uint16], w: int) -> npt.NDArray[Any]:
    """Pack pair codes ``i0 | i1 << w`` (n, 2048) into w-bit streams, (n, 512 * w) bytes."""
    if w == 8:
        return pairs.astype("<u2", copy=False).view(np.uint8)
    return pairs.astype(np.uint8)  # w == 4: a pair code is the packed byte


def _palettes_sorted(
    nu: npt.NDArray[Any], limit: int
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Palettes of the rows with at most ``limit`` distinct ids (the others stay plain).

    Returns all those palettes concatenated (each sorted), the row (numbered among the kept
    ones) of each entry, and which rows of ``nu`` were kept.
    """
    srt = np.sort(nu, axis=1)
    first = np.empty(srt.shape, dtype=bool)
    first[:, 0] = True
    np.not_equal(srt[:, 1:], srt[:, :-1], out=first[:, 1:])
    kept = np.arange(nu.shape[0])
    if np.count_nonzero(first) > limit:
        # Some section may be noise: count per row (slower) and drop those past the limit,
        # sparing them the costly extraction below.
        ok = first.view(np.uint8).sum(axis=1, dtype=np.uint16) <= limit
        if not ok.all():
            kept = np.flatnonzero(ok)
            srt, first = srt[kept], first[kept]
    pos = np.flatnonzero(first)  # the first of each run of equal ids, row by row
    return srt.reshape(-1).take(pos), pos >> 12, kept


def _index_sorted(
    nu: npt.NDArray[Any], pal: npt.NDArray[Any], row: npt.NDArray[np.intp]
) -> _Palettes:
    n = nu.shape[0]
    p = np.bincount(row, minlength=n)
    starts = np.cumsum(p) - p
    rank = np.arange(pal.size, dtype=np.intp) - starts[row]
    idt = np.uint8 if int(p.max()) <= 256 else np.uint16
    k = int(pal.max()) + 1
    if n * k <= _LUT_LIMIT:
        # One gather through a stacked per-section id->index table beats n searchsorted calls.
        kdt = np.uint16 if n * k <= 1 << 16 else np.uint32
        keys = np.add(nu, (np.arange(n, dtype=np.intp) * k).astype(kdt)[:, None], dtype=kdt)
        lut = np.zeros(n * k, dtype=idt)
        lut[row * k + pal] = rank
        local = lut.take(keys, mode="wrap")
    else:
        # Big ids (uint32 worlds): a per-section binary search keeps memory bounded.
        local = np.empty(nu.shape, dtype=idt)
        for r in range(n):
            local[r] = np.searchsorted(pal[starts[r] : starts[r] + p[r]], nu[r])
    return _Palettes(pal, row, rank, p, local)


def encode_chunk(blocks: npt.NDArray[Any]) -> bytes:
    """Encode a ``(height, 16, 16)`` uint16/uint32 block array; see ``docs/chunk-format.md``."""
    a = _validate(blocks)
    nsec = a.shape[0]
    isz = a.itemsize
    dt = a.dtype
    raw_size = a.nbytes

    mn = a.min(axis=1)
    mx = a.max(axis=1)
    nur = np.flatnonzero(mn != mx)
    n = nur.size
    modes = np.zeros(nsec, dtype=np.uint8)
    parts: list[Any] = []  # index data and plain sections, in layout order
    p16: npt.NDArray[np.intp] | None = None
    if not n:
        padded = mn
    else:
        r0 = int(nur[0])
        nu = a[r0 : r0 + n] if int(nur[-1]) - r0 + 1 == n else a.take(nur, axis=0)
        codes = _CODES32 if isz == 4 else _CODES16
        pl: _Palettes | None
        if int(mx[nur].max()) < _SMALL_IDS:
            pl = _palettes_small(nu, codes)
            code = codes.take(pl.p)
            plain = None
        else:
            # Sections past the palette limit stay plain; the others all take a palette.
            pal, row, kept = _palettes_sorted(nu, _MAX_P16 if isz == 4 else 256)
            code = np.full(n, MODE_PLAIN, dtype=np.uint8)
            pl = None
            if kept.size:
                code[kept] = codes.take(np.bincount(row, minlength=kept.size))
                pl = _index_sorted(nu if kept.size == n else nu[kept], pal, row)
            plain = code == MODE_PLAIN
            if not plain.any():
                plain = None
        modes[nur] = code
        plan = _plan(modes.tobytes(), isz)
        slots = plan.fixed_slots
        if pl is not None:
            sec_m = nur if plain is None else nur[~plain]
            base = plan.base[sec_m]
            if plan.n16:
                is16 = modes[sec_m] == 16
                p16 = pl.p[is16]
                base[is16] = plan.fixed_slots + np.cumsum(p16) - p16
                slots += int(p16.sum())
            padded = np.zeros(slots, dtype=dt)
            padded[base[pl.row] + pl.rank] = pl.pal
            # Row of each indexed section in ``pl.local``.
            inv = np.empty(nsec, dtype=np.intp)
            inv[sec_m] = np.arange(sec_m.size)
            for g in plan.groups:
                if g.mode == 0 or g.mode == MODE_PLAIN:
                    continue
                if g.start >= 0:
                    i0 = int(inv[g.start])
                    sel = pl.local[i0 : i0 + g.rows.size]
                else:
                    sel = pl.local.take(inv[g.rows], axis=0)
                parts.append(_pack_pairs(sel, g.mode) if pl.pairs else _pack(sel, g.mode))
        else:
            padded = np.zeros(slots, dtype=dt)
        if plan.groups[0].mode == 0:
            padded[: plan.groups[0].rows.size] = mn[plan.groups[0].rows]
        if plain is not None:
            parts.append(nu[plain])

    table = modes.tobytes()
    table += bytes(_align4(nsec) - nsec)
    if p16 is not None:
        table += p16.astype("<u4").tobytes()
    pal_bytes = padded.tobytes()
    pal_bytes += bytes(_align4(len(pal_bytes)) - len(pal_bytes))
    body_size = len(table) + len(pal_bytes) + sum(c.nbytes for c in parts)

    flags = 0
    body: Any
    if body_size < raw_size:
        body = b"".join([table, pal_bytes, *(c.tobytes() for c in parts)])
    else:
        # The palette does not pay (noise): store the plain array.
        flags |= FLAG_PLAIN
        body = a.tobytes()
        body_size = raw_size
    packed: bytes = lz4.block.compress(body, store_size=False)
    if len(packed) < body_size:
        flags |= FLAG_LZ4
        payload: bytes = packed
    else:
        payload = body

    head = _HEADER.pack(MAGIC, FORMAT_VERSION, isz, flags, 0, nsec * 16, body_size, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, _CRC.pack(crc), payload))


# ---------------------------------------------------------------------------------- decode


class _Group(NamedTuple):
    """Sections of one mode: where their palettes and data are, how to expand them."""

    mode: int
    rows: npt.NDArray[np.intp]
    start: int  # first section when ``rows`` is a contiguous run, else -1
    pal_off: int  # first palette entry (16-bit and plain groups: after all fixed ones)
    data_off: int  # first byte within the section data region
    nbytes: int  # data bytes per section
    row16: npt.NDArray[Any]  # (n, 1): 256 * k, turning byte b of row k into a table row
    wide: np.dtype[Any]  # mode 4: one item holding both values of a byte


class _Plan(NamedTuple):
    groups: tuple[_Group, ...]
    n16: int  # sections with a 16-bit palette
    fixed_slots: int  # palette entries of the uniform, 4- and 8-bit sections
    base: npt.NDArray[np.intp]  # each such section's first palette entry
    table_size: int  # mode table + padding + 16-bit palette lengths
    data_size: int  # index data and plain sections


@lru_cache(maxsize=256)  # a plan is a few KB: bounded memory whatever the input
def _plan(modes: bytes, itemsize: int) -> _Plan:
    """Validate a mode table and work out the layout; chunks of a world share few tables."""
    m = np.frombuffer(modes, dtype=np.uint8)
    bad = np.setdiff1d(m, np.array(_MODE_ORDER, dtype=np.uint8))
    if bad.size:
        sec = int(np.flatnonzero(m == bad[0])[0])
        raise _err(f"corrupt chunk: section {sec} has unknown mode {int(bad[0])}")
    groups = []
    base = np.zeros(m.size, dtype=np.intp)
    fixed = data = n16 = 0
    for mode in _MODE_ORDER:
        rows = np.flatnonzero(m == mode)
        if not rows.size:
            continue
        rows.flags.writeable = False
        n = rows.size
        contiguous = int(rows[-1]) - int(rows[0]) + 1 == n
        nbytes = _index_bytes(mode, itemsize) if mode else 0
        groups.append(
            _Group(
                mode,
                rows,
                int(rows[0]) if contiguous else -1,
                fixed,
                data,
                nbytes,
                _ROW16[:n],
                np.dtype(f"<u{2 * itemsize}") if mode == 4 else _DTYPES[itemsize],
            )
        )
        if mode <= 8:
            base[rows] = fixed + (np.arange(n) << mode)
            fixed += n << mode
        elif mode == 16:
            n16 = n
        data += n * nbytes
    base.flags.writeable = False
    return _Plan(tuple(groups), n16, fixed, base, _align4(len(modes)) + 4 * n16, data)


def _bytes_view(data: object) -> memoryview:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _err(
            f"encoded chunk must be bytes, bytearray or memoryview, got {type(data).__name__}"
        )
    try:
        return memoryview(data).cast("B")
    except TypeError as exc:
        raise _err(f"encoded chunk must be a contiguous byte buffer: {exc}") from None


def decode_chunk(data: bytes | bytearray | memoryview) -> npt.NDArray[Any]:
    """Decode bytes made by :func:`encode_chunk` back into a ``(height, 16, 16)`` array."""
    mv = _bytes_view(data)
    size = mv.nbytes
    if size == 0:
        raise _err("encoded chunk is empty")
    if size < HEADER_SIZE:
        if bytes(mv[:4]) != MAGIC[:size]:
            raise _err("not a voxeldb chunk: unknown magic")
        raise _err(f"encoded chunk truncated: {size} bytes, the header alone is {HEADER_SIZE}")
    magic, version, isz, flags, reserved, height, body_size, payload_size = _HEADER.unpack_from(mv)
    if magic != MAGIC:
        raise _err(f"not a voxeldb chunk: unknown magic {magic!r} (expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise _err(
            f"unsupported chunk format version {version} (this voxeldb reads {FORMAT_VERSION})"
        )
    if size - HEADER_SIZE != payload_size:
        if size - HEADER_SIZE < payload_size:
            raise _err(
                f"encoded chunk truncated: header declares {payload_size} payload bytes, "
                f"{size - HEADER_SIZE} present"
            )
        raise _err(
            f"encoded chunk has {size - HEADER_SIZE - payload_size} trailing bytes after its "
            "payload"
        )
    (crc,) = _CRC.unpack_from(mv, _HEADER.size)
    payload = mv[HEADER_SIZE:]
    if zlib.crc32(payload, zlib.crc32(mv[: _HEADER.size])) != crc:
        raise _err("corrupted chunk: checksum mismatch")
    # The checksum matched, so what follows guards against buggy or hostile encoders.
    if isz not in _DTYPES:
        raise _err(f"corrupt chunk header: unknown dtype code {isz}")
    if flags & ~_KNOWN_FLAGS or reserved:
        raise _err(f"corrupt chunk header: unknown flags {flags:#04x} / reserved {reserved}")
    if height <= 0 or height % 16 or height > MAX_HEIGHT:
        raise _err(
            f"corrupt chunk header: height {height} is not a positive multiple of 16 "
            f"up to {MAX_HEIGHT}"
        )
    dt = _DTYPES[isz]
    raw_size = height * 256 * isz
    plain = bool(flags & FLAG_PLAIN)
    if body_size > raw_size or (plain and body_size != raw_size):
        raise _err(
            f"corrupt chunk header: declared body size {body_size} is past the limit "
            f"{raw_size} for height {height} and {dt.name}"
        )
    body: Any
    if flags & FLAG_LZ4:
        if payload_size >= body_size:
            raise _err("corrupt chunk: LZ4 flag set on a payload that is not smaller")
        try:
            # The size comes from the validated header, so the allocation is bounded.
            body = lz4.block.decompress(
                payload, uncompressed_size=body_size, return_bytearray=plain
            )
        except lz4.block.LZ4BlockError as exc:
            raise _err(f"corrupted chunk: LZ4 payload does not decompress ({exc})") from None
        if len(body) != body_size:
            raise _err(
                f"corrupt chunk: LZ4 payload gives {len(body)} bytes, header says {body_size}"
            )
    else:
        if payload_size != body_size:
            raise _err(
                f"corrupt chunk: uncompressed payload of {payload_size} bytes, "
                f"header says {body_size}"
            )
        body = payload

    if plain:
        out = np.frombuffer(body, dtype=dt)
        if not flags & FLAG_LZ4:
            out = out.copy()  # never alias the caller's buffer
    else:
        out = _decode_sections(body, body_size, height // 16, dt)
    if not out.dtype.isnative:  # big-endian hosts only
        out = out.astype(out.dtype.newbyteorder("="))
    return out.reshape(height, 16, 16)


def _decode_sections(body: Any, body_size: int, nsec: int, dt: np.dtype[Any]) -> npt.NDArray[Any]:
    isz = dt.itemsize
    if body_size < nsec:
        raise _err(f"corrupt chunk: body of {body_size} bytes is shorter than its mode table")
    plan = _plan(bytes(body[:nsec]), isz)
    slots = plan.fixed_slots
    p16 = None
    if plan.n16:
        off = _align4(nsec)
        if body_size < off + 4 * plan.n16:
            raise _err("corrupt chunk: body too short for its 16-bit palette lengths")
        p16 = np.frombuffer(body, dtype="<u4", count=plan.n16, offset=off).astype(np.intp)
        if int(p16.min()) < 1 or int(p16.max()) > 1 << 16:
            raise _err("corrupt chunk: 16-bit palette length out of range 1..65536")
        slots += int(p16.sum())
    data_off = _align4(plan.table_size + slots * isz)
    if data_off + plan.data_size != body_size:
        raise _err(
            f"corrupt chunk: section table implies a body of {data_off + plan.data_size} "
            f"bytes, header says {body_size}"
        )
    buf = np.frombuffer(body, dtype=np.uint8)
    pal = np.frombuffer(body, dtype=dt, count=slots, offset=plan.table_size)
    out = np.empty((nsec, SECTION_BLOCKS), dtype=dt)
    for g in plan.groups:
        mode = g.mode
        n = g.rows.size
        if mode == 0:
            vals = pal[:n, None]
        elif mode <= 8:
            # Byte b of the k-th section of the group is entry 256 k + b of a stacked table
            # of what that byte expands to (1 value, or 2 for mode 4, as one wider item):
            # one gather decodes the whole group.
            do = data_off + g.data_off
            idx = np.bitwise_or(buf[do : do + n * g.nbytes].reshape(n, g.nbytes), g.row16)
            pals = pal[g.pal_off : g.pal_off + (n << mode)]
            if mode == 4:
                pals = pals.reshape(n, 16).take(_SPLIT4, axis=1).view(g.wide).reshape(-1)
            if g.start >= 0:
                pals.take(idx, out=out[g.start : g.start + n].view(pals.dtype), mode="wrap")
                continue
            vals = pals.take(idx, mode="wrap").view(dt)
        elif mode == 16:
            assert p16 is not None
            do = data_off + g.data_off
            idx = np.frombuffer(body, dtype="<u2", count=n * SECTION_BLOCKS, offset=do)
            idx = idx.reshape(n, SECTION_BLOCKS)
            over = idx.max(axis=1) >= p16
            if over.any():
                sec = int(g.rows[np.flatnonzero(over)[0]])
                raise _err(f"corrupt chunk: palette index out of range in section {sec}")
            starts = np.cumsum(p16) - p16 + g.pal_off
            vals = pal.take(idx + starts[:, None], mode="wrap")
        else:
            do = data_off + g.data_off
            vals = np.frombuffer(body, dtype=dt, count=n * SECTION_BLOCKS, offset=do)
            vals = vals.reshape(n, SECTION_BLOCKS)
        if g.start >= 0:
            out[g.start : g.start + n] = vals
        else:
            out[g.rows] = vals
    return out
