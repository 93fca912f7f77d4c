"""Chunk codec: ``(height, 16, 16)`` block arrays <-> compact bytes.

The byte layout is specified in ``docs/chunk-format.md``; keep the two in step. Speed is the
point of most choices below: every step is one numpy operation over all sections that share
a layout (never one per section or per block), index widths are powers of two so packing is
a reshape plus shifts, and decoding turns each packed byte into its 8/w block values with a
single gather from a per-section byte lookup table.
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

# Section modes: a palette of 2**w entries and w-bit indices (w = 0 is a uniform section),
# a 16-bit palette with its own length, or the plain values.
MODE_PLAIN: Final = 255
_PALETTE_WIDTHS: Final = (0, 1, 2, 4, 8)
_MODE_ORDER: Final = (0, 1, 2, 4, 8, 16, MODE_PLAIN)

_DTYPES: Final[dict[int, np.dtype[Any]]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

# A 16-bit palette section stores 4 + 4p + 8192 bytes; it is used only while that is less
# than the plain section (16384 bytes of uint32), i.e. p <= 2046.
_MAX_P16: Final = 2046
# Past this many (section, id) slots the encoder's id->index table is not worth allocating.
_LUT_LIMIT: Final = 1 << 18
# Palette size -> mode: searchsorted(_BOUNDS, p) picks the smallest width that holds p ids.
_BOUNDS: Final = np.array((2, 4, 16, 256, _MAX_P16))
_CODES16: Final = np.array((1, 2, 4, 8, MODE_PLAIN, MODE_PLAIN), dtype=np.uint8)
_CODES32: Final = np.array((1, 2, 4, 8, 16, MODE_PLAIN), dtype=np.uint8)


def _split_table(w: int) -> npt.NDArray[np.intp]:
    """For each byte value, the 8 // w w-bit indices it packs, lowest bits first."""
    b = np.arange(256, dtype=np.intp)[:, None]
    shifts = np.arange(0, 8, w, dtype=np.intp)[None, :]
    return (b >> shifts) & ((1 << w) - 1)


_SPLIT: Final = {w: _split_table(w) for w in (1, 2, 4)}
# Row offsets that turn a section's bytes into rows of a stacked (n * 256) lookup table.
_ROW16: Final = (np.arange(MAX_HEIGHT // 16, dtype=np.uint16) << 8)[:, None]


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
    if w == 1:
        return np.packbits(local, axis=1, bitorder="little")
    if w == 4:
        # Each little-endian u16 holds two indices in its two bytes; fold the high one down.
        x = np.ascontiguousarray(local).view("<u2")
        return (x | (x >> 4)).astype(np.uint8)
    x = np.ascontiguousarray(local).view("<u4")  # w == 2: four indices per u32
    x = x | (x >> 6)
    x = x | (x >> 12)
    return x.astype(np.uint8)


def _local_indices(
    nu: npt.NDArray[Any],
    pal: npt.NDArray[Any],
    pal_row: npt.NDArray[np.intp],
    rank: npt.NDArray[np.intp],
    p: npt.NDArray[np.intp],
    maxval: int,
) -> npt.NDArray[Any]:
    """Each block's index in its own section's (sorted) palette."""
    n = nu.shape[0]
    idt = np.uint8 if int(p.max()) <= 256 else np.uint16
    k = maxval + 1
    if n * k <= _LUT_LIMIT:
        # One gather through a stacked per-section id->index table beats n searchsorted calls.
        kdt = np.uint16 if n * k <= 1 << 16 else np.uint32
        keys = np.add(nu, (np.arange(n, dtype=np.intp) * k).astype(kdt)[:, None], dtype=kdt)
        lut = np.zeros(n * k, dtype=idt)
        lut[pal_row * k + pal] = rank
        return lut.take(keys, mode="wrap")
    # Big ids (uint32 worlds): a per-section binary search keeps memory bounded.
    local = np.empty(nu.shape, dtype=idt)
    starts = np.cumsum(p) - p
    for r in range(n):
        local[r] = np.searchsorted(pal[starts[r] : starts[r] + p[r]], nu[r])
    return local


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
    modes = np.zeros(nsec, dtype=np.uint8)
    parts: list[Any] = []  # index data and plain sections, in layout order
    p16: npt.NDArray[np.intp] | None = None
    if nur.size:
        n = nur.size
        nu = a.take(nur, axis=0)
        srt = np.sort(nu, axis=1)
        first = np.empty(srt.shape, dtype=bool)
        first[:, 0] = True
        np.not_equal(srt[:, 1:], srt[:, :-1], out=first[:, 1:])
        pos = np.flatnonzero(first)  # the first of each run of equal ids, section by section
        pal_row = pos >> 12
        p = np.bincount(pal_row, minlength=n)
        code = (_CODES32 if isz == 4 else _CODES16)[np.searchsorted(_BOUNDS, p)]
        modes[nur] = code
        plan = _plan(modes.tobytes(), isz)
        mapped = code != MODE_PLAIN
        all_mapped = bool(mapped.all())
        pal = srt.reshape(-1).take(pos)
        nu_m = nu
        if not all_mapped:
            nu_m = nu[mapped]
            keep = mapped[pal_row]
            # Renumber the kept sections' rows 0..m-1.
            pal, pal_row = pal[keep], (np.cumsum(mapped) - 1)[pal_row[keep]]
            p = p[mapped]
        if nu_m.shape[0]:
            starts = np.cumsum(p) - p
            rank = np.arange(pal.size, dtype=np.intp) - starts[pal_row]
            local = _local_indices(nu_m, pal, pal_row, rank, p, int(mx[nur][mapped].max()))
            sec_m = nur[mapped] if not all_mapped else nur
            base = plan.base[sec_m]
            if plan.n16:
                is16 = code[mapped] == 16
                p16 = p[is16]
                base[is16] = plan.fixed_slots + np.cumsum(p16) - p16
            slots = plan.fixed_slots + (int(p16.sum()) if p16 is not None else 0)
            padded = np.zeros(slots, dtype=dt)
            padded[base[pal_row] + rank] = pal
            # Row of each section in ``local``: mapped sections in section order.
            inv = np.empty(nsec, dtype=np.intp)
            inv[sec_m] = np.arange(sec_m.size)
            for g in plan.groups:
                if g.mode == 0 or g.mode == MODE_PLAIN:
                    continue
                if g.start >= 0:
                    r0 = int(inv[g.start])
                    sel = local[r0 : r0 + g.rows.size]
                else:
                    sel = local.take(inv[g.rows], axis=0)
                parts.append(_pack(sel, g.mode))
            if plan.groups[0].mode == 0:
                padded[: plan.groups[0].rows.size] = mn[plan.groups[0].rows]
        else:
            padded = mn[mn == mx]
        if not all_mapped:
            parts.append(nu[~mapped])
    else:
        padded = mn

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

    head = _HEADER.pack(
        MAGIC, FORMAT_VERSION, isz, flags, 0, nsec * 16, body_size, len(payload)
    )
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, _CRC.pack(crc), payload))


# ---------------------------------------------------------------------------------- decode


class _Group(NamedTuple):
    mode: int
    rows: npt.NDArray[np.intp]
    start: int  # first section when ``rows`` is a contiguous run, else -1


class _Plan(NamedTuple):
    groups: tuple[_Group, ...]
    n16: int  # sections with a 16-bit palette
    fixed_slots: int  # palette entries of the uniform and 1..8-bit sections
    base: npt.NDArray[np.intp]  # each such section's first palette entry
    table_size: int  # mode table + padding + 16-bit palette lengths
    data_size: int  # index data and plain sections


@lru_cache(maxsize=4096)
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
        contiguous = int(rows[-1]) - int(rows[0]) + 1 == rows.size
        groups.append(_Group(mode, rows, int(rows[0]) if contiguous else -1))
        if mode <= 8:
            base[rows] = fixed + (np.arange(rows.size) << mode)
            fixed += rows.size << mode
        elif mode == 16:
            n16 = rows.size
        if mode:
            data += rows.size * _index_bytes(mode, itemsize)
    base.flags.writeable = False
    return _Plan(tuple(groups), n16, fixed, base, _align4(len(modes)) + 4 * n16, data)


def _bytes_view(data: object) -> memoryview:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _err(f"encoded chunk must be bytes, bytearray or memoryview, got {type(data).__name__}")
    try:
        mv = memoryview(data).cast("B")
    except TypeError as exc:
        raise _err(f"encoded chunk must be a contiguous byte buffer: {exc}") from None
    return mv


def _store(out: npt.NDArray[Any], g: _Group, vals: npt.NDArray[Any]) -> None:
    if g.start >= 0:
        out[g.start : g.start + g.rows.size] = vals
    else:
        out[g.rows] = vals


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
    magic, version, isz, flags, reserved, height, body_size, payload_size = (
        _HEADER.unpack_from(mv)
    )
    if magic != MAGIC:
        raise _err(f"not a voxeldb chunk: unknown magic {magic!r} (expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise _err(
            f"unsupported chunk format version {version} (this voxeldb reads {FORMAT_VERSION})"
        )
    if size - HEADER_SIZE < payload_size:
        raise _err(
            f"encoded chunk truncated: header declares {payload_size} payload bytes, "
            f"{size - HEADER_SIZE} present"
        )
    if size - HEADER_SIZE > payload_size:
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
    nsec = height // 16
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
        arr = np.frombuffer(body, dtype=dt)
        if not flags & FLAG_LZ4:
            arr = arr.copy()  # never alias the caller's buffer
        return arr.astype(dt.newbyteorder("="), copy=False).reshape(height, 16, 16)
    return _decode_sections(body, body_size, nsec, dt).reshape(height, 16, 16)


def _decode_sections(body: Any, body_size: int, nsec: int, dt: np.dtype[Any]) -> npt.NDArray[Any]:
    isz = dt.itemsize
    if body_size < nsec:
        raise _err(f"corrupt chunk: body of {body_size} bytes is shorter than its mode table")
    buf = np.frombuffer(body, dtype=np.uint8)
    plan = _plan(bytes(buf[:nsec]), isz)
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
    pal_off = plan.table_size
    data_off = _align4(pal_off + slots * isz)
    if data_off + plan.data_size != body_size:
        raise _err(
            f"corrupt chunk: section table implies a body of {data_off + plan.data_size} "
            f"bytes, header says {body_size}"
        )
    pal = np.frombuffer(body, dtype=dt, count=slots, offset=pal_off)
    out = np.empty((nsec, SECTION_BLOCKS), dtype=dt.newbyteorder("="))
    po = 0
    do = data_off
    for g in plan.groups:
        n = g.rows.size
        mode = g.mode
        if mode == 0:
            _store(out, g, pal[:n, None])
            po = n
            continue
        nbytes = _index_bytes(mode, isz)
        if mode == MODE_PLAIN:
            vals = np.frombuffer(body, dtype=dt, count=n * SECTION_BLOCKS, offset=do)
            _store(out, g, vals.reshape(n, SECTION_BLOCKS))
        elif mode == 16:
            assert p16 is not None
            idx = np.frombuffer(body, dtype="<u2", count=n * SECTION_BLOCKS, offset=do)
            idx = idx.reshape(n, SECTION_BLOCKS)
            over = idx.max(axis=1) >= p16
            if over.any():
                sec = int(g.rows[np.flatnonzero(over)[0]])
                raise _err(f"corrupt chunk: palette index out of range in section {sec}")
            starts = np.cumsum(p16) - p16 + po
            _store(out, g, pal.take(idx + starts[:, None], mode="wrap"))
        else:
            # Byte b of the k-th section of the group becomes row 256 * k + b of a stacked
            # table holding the 8 // w values that byte expands to.
            idx = np.bitwise_or(buf[do : do + n * nbytes].reshape(n, nbytes), _ROW16[:n])
            pals = pal[po : po + (n << mode)].reshape(n, 1 << mode)
            per = 8 // mode
            if per == 1:
                lut = pals.reshape(-1)
            elif per * isz in (4, 8):
                # Whole rows as one 4- or 8-byte item: numpy's fastest gather.
                lut = pals.take(_SPLIT[mode], axis=1).view(f"<u{per * isz}").reshape(-1)
            else:
                lut = pals.take(_SPLIT[mode], axis=1).reshape(n * 256, per)
            if g.start >= 0:
                dst = out[g.start : g.start + n].view(lut.dtype).reshape(idx.shape + lut.shape[1:])
                lut.take(idx, axis=0, out=dst, mode="wrap")
            else:
                vals = lut.take(idx, axis=0, mode="wrap")
                out[g.rows] = vals.view(out.dtype).reshape(n, SECTION_BLOCKS)
            po += n << mode
        do += n * nbytes
    return out
