"""The frame around a chunk's payload: a 24-byte header ending in a CRC-32.

The layout is the "Header" part of ``docs/chunk-format.md``; keep the two in step.

Parsing checks everything the header claims before anyone allocates by it: after
:func:`parse_frame` the body size is bounded by the array it describes, so a decompressor
can be handed that size safely.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final, NamedTuple

import numpy as np

from voxeldb.chunks.codec._compress import COMPRESSION_FLAGS
from voxeldb.errors import ChunkFormatError

MAGIC: Final = b"VXCK"
FORMAT_VERSION: Final = 1
MAX_HEIGHT: Final = 4096

# The body is the plain array, not section data (set when palettes would not pay).
FLAG_PLAIN: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_PLAIN | COMPRESSION_FLAGS

# The dtype code is the item size; both are stored little-endian whatever the host.
DTYPES: Final[dict[int, np.dtype[Any]]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

# magic, version, dtype code, flags, reserved, height, body size, payload size
_HEADER: Final = struct.Struct("<4sBBBBIII")
_CRC: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEADER.size + _CRC.size


class Header(NamedTuple):
    """The header fields that vary (magic and version are constants, reserved is zero)."""

    dtype_code: int  # item size in bytes, a key of DTYPES
    flags: int  # FLAG_PLAIN and at most one compressor's flag
    height: int  # blocks, a positive multiple of 16 up to MAX_HEIGHT
    body_size: int  # bytes before compression
    payload_size: int  # bytes stored after the header

    @property
    def dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype_code]

    @property
    def plain(self) -> bool:
        return bool(self.flags & FLAG_PLAIN)

    @property
    def sections(self) -> int:
        return self.height // 16


def pack_frame(header: Header, payload: bytes) -> bytes:
    """The encoded chunk: header, checksum of header and payload, payload."""
    head = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        header.dtype_code,
        header.flags,
        0,
        header.height,
        header.body_size,
        header.payload_size,
    )
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, _CRC.pack(crc), payload))


def parse_frame(data: object) -> tuple[Header, memoryview]:
    """Check an encoded chunk's frame; return its header and a view of its payload."""
    view = _bytes_view(data)
    size = view.nbytes
    if size == 0:
        raise ChunkFormatError("encoded chunk is empty")
    if size < HEADER_SIZE:
        if bytes(view[:4]) != MAGIC[:size]:
            raise ChunkFormatError("not a voxeldb chunk: unknown magic")
        raise ChunkFormatError(
            f"encoded chunk truncated: {size} bytes, the header alone is {HEADER_SIZE}"
        )
    magic, version, code, flags, reserved, height, body_size, payload_size = _HEADER.unpack_from(
        view
    )
    if magic != MAGIC:
        raise ChunkFormatError(f"not a voxeldb chunk: unknown magic {magic!r} (expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise ChunkFormatError(
            f"unsupported chunk format version {version} (this voxeldb reads {FORMAT_VERSION})"
        )
    stored = size - HEADER_SIZE
    if stored < payload_size:
        raise ChunkFormatError(
            f"encoded chunk truncated: header declares {payload_size} payload bytes, "
            f"{stored} present"
        )
    if stored > payload_size:
        raise ChunkFormatError(
            f"encoded chunk has {stored - payload_size} trailing bytes after its payload"
        )
    (crc,) = _CRC.unpack_from(view, _HEADER.size)
    payload = view[HEADER_SIZE:]
    if zlib.crc32(payload, zlib.crc32(view[: _HEADER.size])) != crc:
        raise ChunkFormatError("corrupted chunk: checksum mismatch")
    header = Header(code, flags, height, body_size, payload_size)
    # The checksum matched, so what follows guards against buggy or hostile encoders.
    _check_fields(header, reserved)
    return header, payload


def _check_fields(header: Header, reserved: int) -> None:
    code, flags, height, body_size = header[:4]
    if code not in DTYPES:
        raise ChunkFormatError(f"corrupt chunk header: unknown dtype code {code}")
    compression = flags & COMPRESSION_FLAGS
    if flags & ~_KNOWN_FLAGS or compression & (compression - 1) or reserved:
        raise ChunkFormatError(
            f"corrupt chunk header: unknown flags {flags:#04x} / reserved {reserved}"
        )
    if height <= 0 or height % 16 or height > MAX_HEIGHT:
        raise ChunkFormatError(
            f"corrupt chunk header: height {height} is not a positive multiple of 16 "
            f"up to {MAX_HEIGHT}"
        )
    # Section data is only used while smaller than the array, and a plain body is the array:
    # this bound is what keeps a lying size from becoming a huge allocation.
    raw_size = height * 256 * code
    if body_size > raw_size or (header.plain and body_size != raw_size):
        raise ChunkFormatError(
            f"corrupt chunk header: declared body size {body_size} is past the limit "
            f"{raw_size} for height {height} and {header.dtype.name}"
        )


def _bytes_view(data: object) -> memoryview:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChunkFormatError(
            f"encoded chunk must be bytes, bytearray or memoryview, got {type(data).__name__}"
        )
    try:
        return memoryview(data).cast("B")
    except TypeError as exc:
        raise ChunkFormatError(f"encoded chunk must be a contiguous byte buffer: {exc}") from None
