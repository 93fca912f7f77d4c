"""The frame: header, sizes and checksum, and every way a damaged one must fail."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from tests.chunks.codec.helpers import FLAG_PLAIN, GOLDEN, assert_same, parse, seal, with_body
from voxeldb.chunks.codec import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    MAX_HEIGHT,
    decode_chunk,
    encode_chunk,
)
from voxeldb.chunks.codec._frame import Header, pack_frame, parse_frame
from voxeldb.errors import ChunkFormatError


def test_decode_empty() -> None:
    for empty in (b"", bytearray(), memoryview(b"")):
        with pytest.raises(ChunkFormatError, match="empty"):
            decode_chunk(empty)


@pytest.mark.parametrize("thing", [None, "VXCK", 12, [1, 2, 3], np.zeros(40, np.uint8)])
def test_decode_rejects_non_bytes(thing: object) -> None:
    with pytest.raises(ChunkFormatError, match="bytes"):
        decode_chunk(thing)  # type: ignore[arg-type]


def test_decode_rejects_non_contiguous_memoryview(terrain_bytes: bytes) -> None:
    view = memoryview(terrain_bytes + terrain_bytes)[::2]
    with pytest.raises(ChunkFormatError, match="contiguous"):
        decode_chunk(view)


@pytest.mark.parametrize(
    "name", ["terrain", "air", "noise_u16", "mixed_u32", "terrain@zstd", "mixed_u32@zstd-1"]
)
def test_every_truncation_raises(name: str) -> None:
    data = (GOLDEN / f"{name}.bin").read_bytes()
    step = max(1, len(data) // 3000)  # every prefix of the small ones, a dense sample of noise
    for n in [*range(0, len(data), step), *range(len(data) - 64, len(data))]:
        with pytest.raises(ChunkFormatError, match=r"empty|truncated"):
            decode_chunk(data[:n])


def test_trailing_bytes_raise(terrain_bytes: bytes) -> None:
    with pytest.raises(ChunkFormatError, match="trailing"):
        decode_chunk(terrain_bytes + b"\x00")


@pytest.mark.parametrize(
    "name",
    [
        "terrain",
        "air",
        "noise_u16",
        "mixed_u16",
        "big_ids_u32",
        "terrain@zstd",
        "air@zstd",
        "big_ids_u32@zstd",
    ],
)
def test_every_single_bit_flip_is_caught(name: str) -> None:
    data = (GOLDEN / f"{name}.bin").read_bytes()
    buf = bytearray(data)
    positions = range(len(data)) if len(data) < 6000 else range(0, len(data), 7)
    for i in positions:
        for bit in (0, 3, 7):
            buf[i] ^= 1 << bit
            with pytest.raises(ChunkFormatError):
                decode_chunk(buf)
            buf[i] ^= 1 << bit
    assert bytes(buf) == data


def test_random_corruption_never_returns_a_wrong_array(terrain_bytes: bytes) -> None:
    rng = np.random.default_rng(11)
    expected = decode_chunk(terrain_bytes)
    for _ in range(300):
        buf = bytearray(terrain_bytes)
        for i in rng.integers(0, len(buf), int(rng.integers(1, 6))):
            buf[i] = int(rng.integers(0, 256))
        if bytes(buf) == terrain_bytes:
            continue
        try:
            got = decode_chunk(buf)
        except ChunkFormatError:
            continue
        assert_same(got, expected)  # only if every change undid itself


def test_random_garbage_raises() -> None:
    rng = np.random.default_rng(12)
    for n in (1, 3, 4, 23, 24, 25, 100, 5000):
        for _ in range(20):
            garbage = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            with pytest.raises(ChunkFormatError):
                decode_chunk(garbage)
            with pytest.raises(ChunkFormatError):
                decode_chunk(MAGIC + bytes([FORMAT_VERSION]) + garbage)


def test_checksum_mismatch_is_reported(terrain_bytes: bytes) -> None:
    buf = bytearray(terrain_bytes)
    buf[-1] ^= 0x40
    with pytest.raises(ChunkFormatError, match="checksum"):
        decode_chunk(buf)
    buf = bytearray(terrain_bytes)
    buf[20] ^= 1  # the stored checksum itself
    with pytest.raises(ChunkFormatError, match="checksum"):
        decode_chunk(buf)


def test_unknown_magic(terrain_bytes: bytes) -> None:
    for bad in (b"VXCL" + terrain_bytes[4:], b"\x89PNG\r\n\x1a\n" + bytes(40), b"PK"):
        with pytest.raises(ChunkFormatError, match="magic"):
            decode_chunk(bad)


def test_unknown_version(terrain_bytes: bytes) -> None:
    p = parse(terrain_bytes)
    for version in (0, 3, 255):
        with pytest.raises(ChunkFormatError, match=f"version {version}"):
            decode_chunk(seal(replace(p, version=version)))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"dtype_code": 1}, "dtype"),
        ({"dtype_code": 8}, "dtype"),
        ({"flags": 0x05}, "flags"),
        ({"flags": 0x81}, "flags"),
        ({"reserved": 1}, "reserved"),
        ({"reserved": 2}, "reserved"),  # version 1 has no compressor id
        ({"height": 0}, "height"),
        ({"height": 100}, "height"),
        ({"height": MAX_HEIGHT + 16}, "height"),
        ({"height": 2**32 - 16}, "height"),
    ],
)
def test_bad_header_fields_with_valid_checksum(
    terrain_bytes: bytes, fields: dict[str, int], words: str
) -> None:
    with pytest.raises(ChunkFormatError, match=words):
        decode_chunk(seal(replace(parse(terrain_bytes), **fields)))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"flags": 0x01}, "flags"),  # version 2 has no LZ4 bit
        ({"flags": 0x03}, "flags"),
        ({"flags": 0x40}, "flags"),
        ({"reserved": 3}, "compressor id 3"),
        ({"reserved": 255}, "compressor id 255"),
        ({"dtype_code": 3}, "dtype"),
        ({"height": 8}, "height"),
    ],
)
def test_bad_version_2_header_fields_with_valid_checksum(
    terrain: npt.NDArray[np.uint16], fields: dict[str, int], words: str
) -> None:
    data = encode_chunk(terrain, compression="zstd")
    p = parse(data)
    assert (p.version, p.reserved) == (2, 2)
    with pytest.raises(ChunkFormatError, match=words):
        decode_chunk(seal(replace(p, **fields), data[HEADER_SIZE:]))


def test_version_2_may_name_lz4_or_no_compressor(terrain: npt.NDArray[np.uint16]) -> None:
    """The encoder writes those as version 1, but a version 2 reader reads them too."""
    for compression, which in (("lz4", 1), ("none", 0)):
        p = parse(encode_chunk(terrain, compression=compression))
        assert p.version == 1
        assert_same(
            decode_chunk(seal(replace(p, version=2, flags=p.flags & 2, reserved=which))), terrain
        )


@pytest.mark.parametrize("body_size", [2**32 - 1, 10**9, 384 * 256 * 2 + 1])
def test_declared_size_past_the_limit(terrain_bytes: bytes, body_size: int) -> None:
    """A lying size never reaches LZ4 as an allocation request."""
    p = parse(terrain_bytes)
    payload = terrain_bytes[HEADER_SIZE:]
    with pytest.raises(ChunkFormatError, match="limit"):
        decode_chunk(seal(replace(p, body_size=body_size), payload))


def test_plain_body_of_the_wrong_size() -> None:
    data = (GOLDEN / "noise_u16.bin").read_bytes()
    p = parse(data)
    with pytest.raises(ChunkFormatError, match="limit"):
        decode_chunk(with_body(data, p.body[:-2]))


def test_errors_are_value_errors(terrain_bytes: bytes) -> None:
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(terrain_bytes[:-1] + bytes([terrain_bytes[-1] ^ 1]))


@pytest.mark.parametrize(
    ("compressor", "version", "flags", "byte7"), [(0, 1, 2, 0), (1, 1, 3, 0), (2, 2, 2, 2)]
)
def test_a_built_frame_parses_back_to_its_header_and_payload(
    compressor: int, version: int, flags: int, byte7: int
) -> None:
    header = Header(
        dtype_code=4,
        flags=FLAG_PLAIN,
        compressor=compressor,
        height=32,
        body_size=32768,
        payload_size=5,
    )
    data = pack_frame(header, b"12345")
    assert len(data) == HEADER_SIZE + 5
    assert (data[4], data[6], data[7]) == (version, flags, byte7)
    parsed, payload = parse_frame(data)
    assert parsed == header
    assert bytes(payload) == b"12345"
    assert (parsed.plain, parsed.sections, parsed.dtype) == (True, 2, np.dtype("<u4"))
