"""The chunk codec: ``encode_chunk`` / ``decode_chunk`` (byte layout in ``docs/chunk-format.md``).

The parts, each with one job: ``_sections`` (block array <-> sectioned body, with
``_palette`` and ``_layout``), ``_compress`` (the compressor step: LZ4, zstd or none),
``_frame`` (header and checksum), tied together by ``_chunk``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy.typing as npt

from voxeldb.chunks.codec._chunk import decode_chunk, encode_chunk
from voxeldb.chunks.codec._compress import COMPRESSIONS, resolve
from voxeldb.chunks.codec._frame import FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_HEIGHT

__all__ = [
    "COMPRESSIONS",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_HEIGHT",
    "check_compression",
    "chunk_encoder",
    "decode_chunk",
    "encode_chunk",
]


def check_compression(compression: object, level: object = None) -> None:
    """Raise :class:`~voxeldb.errors.ValidationError` unless ``encode_chunk`` accepts
    ``compression=compression, level=level`` (what a store checks in a world's settings;
    the error's ``field`` is ``"compression"`` or ``"compression_level"``)."""
    resolve(compression, level)


def chunk_encoder(
    compression: str = "lz4", level: int | None = None
) -> Callable[[npt.NDArray[Any]], bytes]:
    """``encode_chunk`` with ``compression`` and ``level`` checked once and bound (a
    store's writer); :class:`~voxeldb.errors.ValidationError` as :func:`check_compression`."""
    check_compression(compression, level)
    return functools.partial(encode_chunk, compression=compression, level=level)
