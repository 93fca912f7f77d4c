"""The frame around a chunk's payload: a 24-byte header ending in a CRC-32.

The layout is the "Header" part of ``docs/chunk-format.md``; keep the two in step. Two
versions share it: version 1 names its one compressor (LZ4) by flag bit 0, version 2 by the
compressor id in byte 7 (reserved in version 1). A chunk is written in the oldest version
that can say how it was made, so LZ4 and uncompressed chunks stay byte-identical to what
earlier releases wrote, and only zstd chunks are version 2.

Parsing checks everything the header claims before anyone allocates by it: after
:func:`parse_frame` the body size is bounded by the array it describes, so a decompressor
can be handed that size safely.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final, NamedTuple

import numpy as np

from voxeldb.chunks.codec._compress import COMPRESSORS, LZ4, NO_COMPRESSION
from voxeldb.errors import ChunkFormatError

MAGIC: Final = b"VXCK"
# The newest version; every version up to it is read.
FORMAT_VERSION: Final = 2
VERSIONS: Final = (1, 2)
MAX_HEIGHT: Final = 4096

# The body is the plain array, not section data (set when palettes would not pay).
FLAG_PLAIN: Final = 0x02
# Version 1 only: the payload is LZ4 (version 2 says so with compressor id 1).
FLAG_LZ4_V1: Final = 0x01

# The dtype code is the item size; both are stored little-endian whatever the host.
DTYPES: Final[dict[int, np.dtype[Any]]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

# magic, version, dtype code, flags, compressor id (v1: reserved), height, body size, payload size
_HEADER: Final = struct.Struct("<4sBBBBIII")
_CRC: Final = struct.Struct("<I")
_HEADER_CRC: Final = struct.Struct("<4sBBBBIIII")
HEADER_SIZE: Final = _HEADER.size + _CRC.size


class Header(NamedTuple):
    """The header fields that vary (magic is a constant; the version follows ``compressor``)."""

    dtype_code: int  # item size in bytes, a key of DTYPES
    flags: int  # FLAG_PLAIN or 0 (version 1's LZ4 bit is folded into ``compressor``)
    compressor: int  # 0 (none) or a key of COMPRESSORS
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

    @property
    def version(self) -> int:
        """The oldest version that can say how this chunk was made."""
        return 1 if self.compressor in (NO_COMPRESSION, LZ4.id) else 2


def pack_frame(header: Header, payload: bytes | memoryview) -> bytes:
    """The encoded chunk: header, checksum of header and payload, payload."""
    version = header.version
    if version == 1:
        flags, byte7 = header.flags | (FLAG_LZ4_V1 if header.compressor else 0), 0
    else:
        flags, byte7 = header.flags, header.compressor
    head = _HEADER.pack(
        MAGIC,
        version,
        header.dtype_code,
        flags,
        byte7,
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
    magic, version, code, flags, byte7, height, body_size, payload_size, crc = (
        _HEADER_CRC.unpack_from(view)
    )
    if magic != MAGIC:
        raise ChunkFormatError(f"not a voxeldb chunk: unknown magic {magic!r} (expected {MAGIC!r})")
    if version not in VERSIONS:
        raise ChunkFormatError(
            f"unsupported chunk format version {version} (this voxeldb reads "
            f"{', '.join(map(str, VERSIONS))})"
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
    payload = view[HEADER_SIZE:]
    if zlib.crc32(payload, zlib.crc32(view[: _HEADER.size])) != crc:
        raise ChunkFormatError("corrupted chunk: checksum mismatch")
    # The checksum matched, so what follows guards against buggy or hostile encoders.
    if version == 1:
        if flags & ~(FLAG_PLAIN | FLAG_LZ4_V1) or byte7:
            raise ChunkFormatError(
                f"corrupt chunk header: unknown flags {flags:#04x} / reserved {byte7}"
            )
        compressor = LZ4.id if flags & FLAG_LZ4_V1 else NO_COMPRESSION
        flags &= FLAG_PLAIN
    else:
        if flags & ~FLAG_PLAIN:
            raise ChunkFormatError(f"corrupt chunk header: unknown flags {flags:#04x}")
        if byte7 != NO_COMPRESSION and byte7 not in COMPRESSORS:
            raise ChunkFormatError(f"corrupt chunk header: unknown compressor id {byte7}")
        compressor = byte7
    header = Header(code, flags, compressor, height, body_size, payload_size)
    _check_fields(header)
    return header, payload


def _check_fields(header: Header) -> None:
    code, height, body_size = header.dtype_code, header.height, header.body_size
    if code not in DTYPES:
        raise ChunkFormatError(f"corrupt chunk header: unknown dtype code {code}")
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
    if type(data) is bytes:  # what the stores hand in: already a flat byte buffer
        return memoryview(data)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChunkFormatError(
            f"encoded chunk must be bytes, bytearray or memoryview, got {type(data).__name__}"
        )
    try:
        return memoryview(data).cast("B")
    except TypeError as exc:
        raise ChunkFormatError(f"encoded chunk must be a contiguous byte buffer: {exc}") from None
