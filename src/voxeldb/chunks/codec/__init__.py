"""The chunk codec: ``encode_chunk`` / ``decode_chunk`` (byte layout in ``docs/chunk-format.md``).

The parts, each with one job: ``_sections`` (block array <-> sectioned body, with
``_palette`` and ``_layout``), ``_compress`` (the compressor step), ``_frame`` (header and
checksum), tied together by ``_chunk``.
"""

from __future__ import annotations

from voxeldb.chunks.codec._chunk import decode_chunk, encode_chunk
from voxeldb.chunks.codec._frame import FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_HEIGHT

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_HEIGHT",
    "decode_chunk",
    "encode_chunk",
]
