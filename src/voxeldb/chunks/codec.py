"""The chunk codec: ``encode_chunk`` / ``decode_chunk`` (byte layout in ``docs/chunk-format.md``)."""

from __future__ import annotations

from voxeldb.chunks._codec import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    MAX_HEIGHT,
    decode_chunk,
    encode_chunk,
)

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_HEIGHT",
    "decode_chunk",
    "encode_chunk",
]
