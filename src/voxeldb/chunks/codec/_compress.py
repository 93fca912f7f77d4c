"""The compression step between a chunk's body and its stored payload.

A compressor is named in the header by one flag bit, its ``flag``; at most one such bit is
set, and none means the payload is the body itself. Adding a compressor is a class with the
:class:`Compressor` interface here plus its bit in :data:`COMPRESSORS`; readers reject bits
they do not know, so that also takes a new format version (``docs/chunk-format.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

import lz4.block

from voxeldb.errors import ChunkFormatError

__all__ = [
    "COMPRESSION_FLAGS",
    "COMPRESSORS",
    "LZ4",
    "MAX_BODY_SIZE",
    "Compressor",
    "LZ4Compressor",
    "compress",
    "decompress",
]

# The largest body: a plain array of 4096 x 16 x 16 uint32. Nothing may allocate more.
MAX_BODY_SIZE: Final = 4096 * 256 * 4


class Compressor(Protocol):
    """One compression algorithm, as the codec uses it: whole bodies, sizes known."""

    @property
    def flag(self) -> int:
        """The header flag bit that says a payload was made by this compressor."""
        ...

    @property
    def name(self) -> str:
        """Shown in error messages."""
        ...

    def compress(self, body: bytes) -> bytes:
        """The compressed body, with no size prefix (the header holds the size)."""
        ...

    def decompress(
        self, payload: bytes | memoryview, size: int, *, writable: bool
    ) -> bytes | bytearray:
        """Up to ``size`` bytes (already checked against :data:`MAX_BODY_SIZE`), as a
        ``bytearray`` when ``writable``; :class:`ChunkFormatError` if the payload is bad."""
        ...


class LZ4Compressor:
    """The LZ4 block format: fast enough that decoding stays close to a plain copy."""

    flag: Final = 0x01
    name: Final = "LZ4"

    def compress(self, body: bytes) -> bytes:
        packed: bytes = lz4.block.compress(body, store_size=False)
        return packed

    def decompress(
        self, payload: bytes | memoryview, size: int, *, writable: bool
    ) -> bytes | bytearray:
        try:
            # LZ4 allocates ``size`` bytes up front, hence the bound checked by the caller.
            body: bytes | bytearray = lz4.block.decompress(
                payload, uncompressed_size=size, return_bytearray=writable
            )
        except lz4.block.LZ4BlockError as exc:
            raise ChunkFormatError(
                f"corrupted chunk: LZ4 payload does not decompress ({exc})"
            ) from None
        return body


LZ4: Final = LZ4Compressor()
COMPRESSORS: Final[Mapping[int, Compressor]] = {LZ4.flag: LZ4}
COMPRESSION_FLAGS: Final = sum(COMPRESSORS)  # distinct bits, so the sum is their union


def compress(body: bytes, compressor: Compressor = LZ4) -> tuple[int, bytes]:
    """The header flag and the payload for ``body``: compressed only where that is smaller."""
    packed = compressor.compress(body)
    if len(packed) < len(body):
        return compressor.flag, packed
    return 0, body


def decompress(
    flags: int, payload: memoryview, body_size: int, *, writable: bool
) -> bytes | bytearray | memoryview:
    """The body of a payload, given the header's flags and body size.

    With no compressor flag the payload itself is returned (a view of the caller's buffer).
    ``writable`` asks a compressor for a ``bytearray`` so the caller need not copy it.
    """
    compressor = COMPRESSORS.get(flags & COMPRESSION_FLAGS)
    if compressor is None:
        if len(payload) != body_size:
            raise ChunkFormatError(
                f"corrupt chunk: uncompressed payload of {len(payload)} bytes, "
                f"header says {body_size}"
            )
        return payload
    name = compressor.name
    if len(payload) >= body_size:
        raise ChunkFormatError(f"corrupt chunk: {name} flag set on a payload that is not smaller")
    if body_size > MAX_BODY_SIZE:
        raise ChunkFormatError(
            f"corrupt chunk: declared body size {body_size} is past the limit {MAX_BODY_SIZE}"
        )
    body = compressor.decompress(payload, body_size, writable=writable)
    if len(body) != body_size:
        raise ChunkFormatError(
            f"corrupt chunk: {name} payload gives {len(body)} bytes, header says {body_size}"
        )
    return body
