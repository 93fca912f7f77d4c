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

from voxeldb.chunks.codec import HEADER_SIZE

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
GOLDEN_NAMES = sorted(p.stem for p in GOLDEN.glob("*.bin"))

HEADER = struct.Struct("<4sBBBBIII")
CRC = struct.Struct("<I")
FLAG_LZ4 = 1
FLAG_PLAIN = 2


@dataclass(frozen=True)
class Parsed:
    magic: bytes
    version: int
    dtype_code: int
    flags: int
    reserved: int
    height: int
    body_size: int
    payload_size: int
    body: bytes


def parse(data: bytes) -> Parsed:
    """An encoded chunk's header fields and its (decompressed) body."""
    fields = HEADER.unpack_from(data)
    payload = data[HEADER_SIZE:]
    body = (
        lz4.block.decompress(payload, uncompressed_size=fields[6])
        if fields[3] & FLAG_LZ4
        else payload
    )
    return Parsed(*fields, body=bytes(body))


def seal(p: Parsed, payload: bytes | None = None) -> bytes:
    """Header fields as given, the body LZ4-compressed if the flags say so, a valid checksum."""
    if payload is None:
        payload = lz4.block.compress(p.body, store_size=False) if p.flags & FLAG_LZ4 else p.body
    head = HEADER.pack(
        p.magic, p.version, p.dtype_code, p.flags, p.reserved, p.height, p.body_size,
        p.payload_size,
    )  # fmt: skip
    return head + CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def with_body(data: bytes, body: bytes, **fields: int) -> bytes:
    """``data`` with another body (sizes made to match unless given), resealed."""
    p = replace(parse(data), body=body, body_size=len(body), **fields)
    payload = lz4.block.compress(body, store_size=False)
    if len(payload) < len(body):  # LZ4 only where it pays, as the encoder does
        p = replace(p, flags=p.flags | FLAG_LZ4)
    else:
        p, payload = replace(p, flags=p.flags & ~FLAG_LZ4), body
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
