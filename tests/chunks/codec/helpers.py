"""Hand-built encodings for the codec tests, following docs/chunk-format.md.

The decoder's checks after the checksum can only be reached by encodings with a valid
checksum and wrong contents; these helpers make them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import lz4.block
import numpy as np
import numpy.typing as npt
import zstandard

from voxeldb.chunks.codec import HEADER_SIZE

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
# NAME.bin: NAME.npy encoded by default (LZ4); NAME@METHOD.bin: with another compression
# and level ("zstd", "zstd-19", "none", "lz4-9"). See scripts/make_golden.py.
GOLDEN_NAMES = sorted(p.stem for p in GOLDEN.glob("*.bin"))


def golden_array(name: str) -> npt.NDArray[np.generic]:
    loaded: npt.NDArray[np.generic] = np.load(GOLDEN / f"{name.split('@')[0]}.npy")
    return loaded


def golden_method(name: str) -> tuple[str, int | None]:
    """The compression and level a golden file was written with."""
    if "@" not in name:
        return "lz4", None
    compression, _, level = name.split("@")[1].partition("-")
    return compression, int(level) if level else None


HEADER = struct.Struct("<4sBBBBIII")
CRC = struct.Struct("<I")
FLAG_LZ4 = 1  # version 1 only
FLAG_PLAIN = 2
ZSTD_ID = 2  # version 2: byte 7 is the compressor id (0 none, 1 LZ4, 2 zstd)
LZ4_ID = 1


@dataclass(frozen=True)
class Parsed:
    magic: bytes
    version: int
    dtype_code: int
    flags: int
    reserved: int  # byte 7: reserved (0) in version 1, the compressor id in version 2
    height: int
    body_size: int
    payload_size: int
    body: bytes


def compressor_id(p: Parsed) -> int:
    if p.version == 1:
        return LZ4_ID if p.flags & FLAG_LZ4 else 0
    return p.reserved


def parse(data: bytes) -> Parsed:
    """An encoded chunk's header fields and its (decompressed) body."""
    fields = HEADER.unpack_from(data)
    payload = data[HEADER_SIZE:]
    p = Parsed(*fields, body=payload)
    which = compressor_id(p)
    if which == LZ4_ID:
        body = lz4.block.decompress(payload, uncompressed_size=p.body_size)
    elif which == ZSTD_ID:
        body = zstandard.ZstdDecompressor().decompress(payload)
    else:
        body = payload
    return replace(p, body=bytes(body))


def compress_as(p: Parsed, body: bytes) -> bytes:
    """``body`` compressed by the compressor ``p``'s header names."""
    which = compressor_id(p)
    if which == LZ4_ID:
        return bytes(lz4.block.compress(body, store_size=False))
    if which == ZSTD_ID:
        return zstandard.ZstdCompressor(write_checksum=False, write_dict_id=False).compress(body)
    return body


def seal(p: Parsed, payload: bytes | None = None) -> bytes:
    """Header fields as given, the body compressed as the header says, a valid checksum."""
    if payload is None:
        payload = compress_as(p, p.body)
    head = HEADER.pack(
        p.magic, p.version, p.dtype_code, p.flags, p.reserved, p.height, p.body_size,
        p.payload_size,
    )  # fmt: skip
    return head + CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def with_body(data: bytes, body: bytes, **fields: int) -> bytes:
    """``data`` with another body (sizes made to match unless given), resealed.

    Version 1 chunks get LZ4 where it pays, as the encoder does; version 2 chunks keep
    their compressor.
    """
    p = replace(parse(data), body=body, body_size=len(body), **fields)
    if p.version == 1:
        p = replace(p, flags=p.flags | FLAG_LZ4)
    payload = compress_as(p, body)
    if len(payload) >= len(body):
        p, payload = replace(p, flags=p.flags & ~FLAG_LZ4), body
        if p.version == 2:
            p = replace(p, reserved=0)
    if "payload_size" not in fields:
        p = replace(p, payload_size=len(payload))
    return seal(p, payload)


def reseal(data: bytes) -> bytes:
    """``data`` with its checksum recomputed over whatever header and payload it has now."""
    head, payload = data[: HEADER.size], data[HEADER_SIZE:]
    return head + CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def assert_same(decoded: npt.NDArray[np.generic], expected: npt.NDArray[np.generic]) -> None:
    assert decoded.shape == expected.shape
    assert decoded.dtype.type is expected.dtype.type
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, expected)


def section_with(ids: npt.ArrayLike, dtype: type, seed: int = 0) -> npt.NDArray[np.generic]:
    rng = np.random.default_rng(seed)
    ids = np.asarray(ids, dtype=dtype)
    sec = ids[rng.integers(0, ids.size, 4096)]
    sec[: ids.size] = ids
    return sec.reshape(16, 16, 16)
