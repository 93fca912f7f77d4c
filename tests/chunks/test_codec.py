"""The chunk codec: round trips, the frozen golden files, and every way bad input must fail."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import lz4.block
import numpy as np
import numpy.typing as npt
import pytest

from voxeldb.chunks import _codec as codec_impl
from voxeldb.chunks.codec import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    MAX_HEIGHT,
    decode_chunk,
    encode_chunk,
)
from voxeldb.errors import ChunkFormatError
from voxeldb.terrain import generate_chunk

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
GOLDEN_NAMES = sorted(p.stem for p in GOLDEN.glob("*.bin"))

# ------------------------------------------------------------------ hand-built encodings
# The decoder's checks after the checksum can only be reached by encodings with a valid
# checksum and wrong contents; these helpers make them, following docs/chunk-format.md.

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


@pytest.fixture(scope="module")
def terrain() -> npt.NDArray[np.uint16]:
    return generate_chunk(2, -3, seed=7)


@pytest.fixture(scope="module")
def terrain_bytes(terrain: npt.NDArray[np.uint16]) -> bytes:
    return encode_chunk(terrain)


# ------------------------------------------------------------------------ golden files


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_decodes_to_its_array(name: str) -> None:
    expected = np.load(GOLDEN / f"{name}.npy")
    assert_same(decode_chunk((GOLDEN / f"{name}.bin").read_bytes()), expected)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_encoding_is_frozen(name: str) -> None:
    """Encoding changed: bump FORMAT_VERSION, keep decoding the old files (docs/chunk-format.md)."""
    expected = (GOLDEN / f"{name}.bin").read_bytes()
    assert encode_chunk(np.load(GOLDEN / f"{name}.npy")) == expected


def test_golden_set_covers_every_section_mode_and_flag() -> None:
    assert {"terrain", "air", "noise_u16", "big_ids_u32", "terrain_h256"} <= set(GOLDEN_NAMES)
    modes: set[int] = set()
    flags: set[int] = set()
    dtypes: set[int] = set()
    for name in GOLDEN_NAMES:
        p = parse((GOLDEN / f"{name}.bin").read_bytes())
        flags.add(p.flags)
        dtypes.add(p.dtype_code)
        if not p.flags & FLAG_PLAIN:
            modes.update(p.body[: p.height // 16])
    assert modes == {0, 4, 8, 16, 255}
    assert flags >= {FLAG_LZ4, FLAG_PLAIN}
    assert dtypes == {2, 4}


# ------------------------------------------------------------------------- round trips


def test_terrain_round_trip_and_size(terrain: npt.NDArray[np.uint16], terrain_bytes: bytes) -> None:
    assert_same(decode_chunk(terrain_bytes), terrain)
    # Far below lz4 on the raw array, which is itself ~40x below the raw array.
    raw_lz4 = lz4.block.compress(terrain.tobytes(), store_size=False)
    assert len(terrain_bytes) < 0.65 * len(raw_lz4)
    assert terrain_bytes[:4] == MAGIC
    assert terrain_bytes[4] == FORMAT_VERSION


@pytest.mark.parametrize("height", [16, 32, 48, 256, 384, 512, MAX_HEIGHT])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_heights_and_dtypes(height: int, dtype: type) -> None:
    a = generate_chunk(1, 1, seed=height, height=height, min_y=-64).astype(dtype)
    a[-1, 3, 4] = np.iinfo(dtype).max
    assert_same(decode_chunk(encode_chunk(a)), a)


def test_all_air_is_tiny() -> None:
    data = encode_chunk(np.zeros((384, 16, 16), np.uint16))
    assert len(data) < 64
    assert_same(decode_chunk(data), np.zeros((384, 16, 16), np.uint16))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_uniform_non_air_sections(dtype: type) -> None:
    a = np.empty((64, 16, 16), dtype)
    a[:16], a[16:32], a[32:48], a[48:] = 5, np.iinfo(dtype).max, 0, 123
    assert_same(decode_chunk(encode_chunk(a)), a)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_noise_is_at_most_raw_plus_256(dtype: type) -> None:
    rng = np.random.default_rng(5)
    for height in (16, 384, MAX_HEIGHT):
        a = rng.integers(0, np.iinfo(dtype).max, (height, 16, 16), dtype=dtype, endpoint=True)
        data = encode_chunk(a)
        assert len(data) <= a.nbytes + 256
        assert_same(decode_chunk(data), a)


def test_noise_per_section_of_4096_ids() -> None:
    """Every section holds 4096 distinct ids: the palette cannot pay anywhere."""
    rng = np.random.default_rng(6)
    a = np.stack([rng.permutation(4096) + 4096 * i for i in range(24)]).astype(np.uint16)
    a = a.reshape(384, 16, 16)
    data = encode_chunk(a)
    assert len(data) <= a.nbytes + 256
    assert_same(decode_chunk(data), a)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("palette", [2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 2046, 2047, 4096])
def test_palette_sizes_at_every_width_boundary(dtype: type, palette: int) -> None:
    top = int(np.iinfo(dtype).max)
    ids = np.linspace(0, top, palette, dtype=np.float64).astype(dtype)
    ids[-1] = top
    assert np.unique(ids).size == palette
    sec = section_with(ids, dtype, seed=palette)
    a = np.concatenate([sec, np.zeros((16, 16, 16), dtype), sec[::-1]])
    data = encode_chunk(a)
    assert len(data) <= a.nbytes + 256
    assert_same(decode_chunk(data), a)


def test_mixed_modes_in_any_order() -> None:
    u = np.uint16
    secs = [
        section_with([1, 2], u, 1),
        np.full((16, 16, 16), 9, u),
        section_with(np.arange(200), u, 2),
        section_with([4, 5, 6], u, 3),
        np.random.default_rng(4).integers(0, 65536, (16, 16, 16)).astype(u),
        section_with([1, 2], u, 5),
        section_with(np.arange(10, 20), u, 6),
        np.full((16, 16, 16), 3, u),
        section_with(np.arange(10, 26), u, 7),
    ]
    a = np.concatenate(secs)
    assert_same(decode_chunk(encode_chunk(a)), a)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_small_ids_every_width_in_scattered_groups(dtype: type) -> None:
    """Ids below 32 take the encoder's bit-mask path: every width, groups not contiguous."""
    secs = [
        section_with([0, 31], dtype, 1),
        np.full((16, 16, 16), 31, dtype),
        section_with(np.arange(20, 32), dtype, 2),
        section_with([3, 4, 5], dtype, 3),
        section_with(np.arange(0, 32), dtype, 4),  # 8-bit
        section_with([7, 9], dtype, 5),
        np.zeros((16, 16, 16), dtype),
        section_with(np.arange(1, 18), dtype, 6),  # 8-bit
        section_with([30, 1, 2, 28], dtype, 7),
    ]
    a = np.concatenate(secs)
    data = encode_chunk(a)
    assert_same(decode_chunk(data), a)
    assert list(parse(data).body[: len(secs)]) == [4, 0, 4, 4, 8, 4, 0, 8, 4]
    assert_same(decode_chunk(encode_chunk(a[:, :, ::-1])), a[:, :, ::-1])


@pytest.mark.parametrize("seed", range(4))
def test_bit_mask_and_sorting_paths_write_the_same_bytes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    dtype = (np.uint16, np.uint32)[seed % 2]
    secs = [
        section_with(rng.choice(32, int(rng.integers(1, 33)), replace=False), dtype, seed + i)
        for i in range(12)
    ]
    a = np.concatenate([generate_chunk(seed, 0, height=64).astype(dtype), *secs])
    fast = encode_chunk(a)
    monkeypatch.setattr(codec_impl, "_SMALL_IDS", 0)
    assert encode_chunk(a) == fast
    assert_same(decode_chunk(fast), a)


def test_threads_share_the_codec_safely() -> None:
    from concurrent.futures import ThreadPoolExecutor

    arrays = [generate_chunk(i, -i, seed=i, height=128) for i in range(8)]
    arrays += [a.astype(np.uint32) * 70_001 for a in arrays[:4]]

    def round_trip(a: npt.NDArray[np.generic]) -> bool:
        return all(np.array_equal(decode_chunk(encode_chunk(a)), a) for _ in range(20))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(round_trip, arrays))


def test_non_contiguous_and_foreign_byte_order_inputs(terrain: npt.NDArray[np.uint16]) -> None:
    expected = encode_chunk(terrain)
    fortran = np.asfortranarray(terrain)
    strided = np.zeros((384, 16, 32), np.uint16)[:, :, ::2]
    strided[...] = terrain
    big_endian = terrain.astype(">u2")
    reversed_view = terrain[::-1][::-1]
    for a in (fortran, strided, big_endian, reversed_view):
        assert encode_chunk(a) == expected
    assert_same(decode_chunk(expected), terrain)


def test_encode_does_not_modify_its_input(terrain: npt.NDArray[np.uint16]) -> None:
    a = terrain.copy()
    encode_chunk(a)
    np.testing.assert_array_equal(a, terrain)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_bytes_like(kind: type, terrain: npt.NDArray[np.uint16]) -> None:
    data = encode_chunk(terrain)
    assert_same(decode_chunk(kind(data)), terrain)


def test_decode_accepts_a_slice_of_a_bigger_buffer(terrain_bytes: bytes) -> None:
    big = bytearray(b"x" * 10 + terrain_bytes + b"y" * 10)
    view = memoryview(big)[10 : 10 + len(terrain_bytes)]
    assert_same(decode_chunk(view), decode_chunk(terrain_bytes))


@pytest.mark.parametrize("seed", [0, 1])
def test_decoded_array_is_writable_and_owns_its_memory(seed: int) -> None:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 65536, (32, 16, 16)).astype(np.uint16)  # plain, no LZ4
    for source in (noise, np.zeros((32, 16, 16), np.uint16), generate_chunk(0, seed)):
        buf = bytearray(encode_chunk(source))
        out = decode_chunk(buf)
        out[0, 0, 0] ^= 1  # writable
        buf[HEADER_SIZE:] = bytes(len(buf) - HEADER_SIZE)  # not aliasing the input
        assert out[0, 0, 0] == source[0, 0, 0] ^ 1
        np.testing.assert_array_equal(out.reshape(-1)[1:], source.reshape(-1)[1:])


def test_encode_is_deterministic(terrain: npt.NDArray[np.uint16]) -> None:
    assert encode_chunk(terrain) == encode_chunk(terrain.copy())


# ------------------------------------------------------------------- bad input: encode


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((384, 16, 16), np.int16), "dtype"),
        (np.zeros((384, 16, 16), np.uint8), "dtype"),
        (np.zeros((384, 16, 16), np.uint64), "dtype"),
        (np.zeros((384, 16, 16), np.float32), "dtype"),
        (np.zeros((384, 16, 16), np.int32), "dtype"),
        (np.zeros((384, 16, 16), bool), "dtype"),
        (np.zeros((384, 16, 16), object), "dtype"),
        (np.zeros((384, 256), np.uint16), "dimensions"),
        (np.zeros((2, 384, 16, 16), np.uint16), "dimensions"),
        (np.zeros((), np.uint16), "dimensions"),
        (np.zeros((384, 16, 15), np.uint16), "shape"),
        (np.zeros((384, 32, 16), np.uint16), "shape"),
        (np.zeros((16, 16, 384), np.uint16), "shape"),
        (np.zeros((0, 16, 16), np.uint16), "height"),
        (np.zeros((100, 16, 16), np.uint16), "height"),
        (np.zeros((MAX_HEIGHT + 16, 16, 16), np.uint16), "height"),
    ],
)
def test_encode_rejects_bad_arrays(array: npt.NDArray[np.generic], words: str) -> None:
    with pytest.raises(ChunkFormatError, match=words) as info:
        encode_chunk(array)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("thing", [None, [[0] * 16] * 16, b"\x00" * 196608, 3])
def test_encode_rejects_non_arrays(thing: object) -> None:
    with pytest.raises(ChunkFormatError, match="numpy array"):
        encode_chunk(thing)  # type: ignore[arg-type]


# ------------------------------------------------------------------- bad input: decode


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


@pytest.mark.parametrize("name", ["terrain", "air", "noise_u16", "mixed_u32"])
def test_every_truncation_raises(name: str) -> None:
    data = (GOLDEN / f"{name}.bin").read_bytes()
    step = max(1, len(data) // 3000)  # every prefix of the small ones, a dense sample of noise
    for n in [*range(0, len(data), step), *range(len(data) - 64, len(data))]:
        with pytest.raises(ChunkFormatError, match=r"empty|truncated"):
            decode_chunk(data[:n])


def test_trailing_bytes_raise(terrain_bytes: bytes) -> None:
    with pytest.raises(ChunkFormatError, match="trailing"):
        decode_chunk(terrain_bytes + b"\x00")


@pytest.mark.parametrize("name", ["terrain", "air", "noise_u16", "mixed_u16", "big_ids_u32"])
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
    for version in (0, 2, 255):
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


@pytest.mark.parametrize("body_size", [2**32 - 1, 10**9, 384 * 256 * 2 + 1])
def test_declared_size_past_the_limit(terrain_bytes: bytes, body_size: int) -> None:
    """A lying size never reaches LZ4 as an allocation request."""
    p = parse(terrain_bytes)
    payload = terrain_bytes[HEADER_SIZE:]
    with pytest.raises(ChunkFormatError, match="limit"):
        decode_chunk(seal(replace(p, body_size=body_size), payload))


@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_declared_body_size_that_lz4_disagrees_with(terrain_bytes: bytes, delta: int) -> None:
    p = parse(terrain_bytes)
    payload = terrain_bytes[HEADER_SIZE:]
    with pytest.raises(ChunkFormatError, match=r"LZ4|corrupt"):
        decode_chunk(seal(replace(p, body_size=p.body_size + delta), payload))


def test_lz4_payload_that_does_not_decompress(terrain_bytes: bytes) -> None:
    p = parse(terrain_bytes)
    junk = b"\xff" * 200
    with pytest.raises(ChunkFormatError, match="LZ4"):
        decode_chunk(seal(replace(p, payload_size=len(junk)), junk))


def test_uncompressed_payload_of_the_wrong_size(terrain_bytes: bytes) -> None:
    p = parse(terrain_bytes)
    body = p.body
    with pytest.raises(ChunkFormatError, match="header says"):
        decode_chunk(
            seal(replace(p, flags=0, body_size=len(body) - 4, payload_size=len(body)), body)
        )


def test_lz4_flag_on_a_payload_that_is_not_smaller(terrain_bytes: bytes) -> None:
    p = parse(terrain_bytes)
    payload = lz4.block.compress(p.body, store_size=False) + bytes(p.body_size)
    with pytest.raises(ChunkFormatError, match="LZ4"):
        decode_chunk(seal(replace(p, payload_size=len(payload)), payload))


def test_plain_body_of_the_wrong_size() -> None:
    data = (GOLDEN / "noise_u16.bin").read_bytes()
    p = parse(data)
    with pytest.raises(ChunkFormatError, match="limit"):
        decode_chunk(with_body(data, p.body[:-2]))


@pytest.mark.parametrize("mode", [1, 2, 3, 5, 7, 9, 32, 254])
def test_unknown_section_mode(terrain_bytes: bytes, mode: int) -> None:
    body = bytearray(parse(terrain_bytes).body)
    body[3] = mode
    with pytest.raises(ChunkFormatError, match=f"section 3 has unknown mode {mode}"):
        decode_chunk(with_body(terrain_bytes, bytes(body)))


@pytest.mark.parametrize("change", [-4, -1, 1, 4, 4096])
def test_body_size_inconsistent_with_the_section_table(terrain_bytes: bytes, change: int) -> None:
    body = parse(terrain_bytes).body
    body = body[:change] if change < 0 else body + bytes(change)
    with pytest.raises(ChunkFormatError, match=r"section table|shorter|limit"):
        decode_chunk(with_body(terrain_bytes, body))


def test_body_shorter_than_its_mode_table(terrain_bytes: bytes) -> None:
    with pytest.raises(ChunkFormatError, match="mode table"):
        decode_chunk(with_body(terrain_bytes, bytes(10)))


def _u32_with_a_16bit_palette() -> tuple[npt.NDArray[np.uint32], bytes, int]:
    ids = np.arange(1000, dtype=np.uint32) * 977 + 5
    a = np.concatenate([np.zeros((16, 16, 16), np.uint32), section_with(ids, np.uint32)])
    data = encode_chunk(a)
    body = parse(data).body
    assert body[:2] == bytes([0, 16])
    return a, data, len(ids)


def test_palette_index_out_of_range() -> None:
    a, data, p = _u32_with_a_16bit_palette()
    assert_same(decode_chunk(data), a)
    body = bytearray(parse(data).body)
    # The last index of the 16-bit section is the body's last u16.
    struct.pack_into("<H", body, len(body) - 2, p)
    with pytest.raises(ChunkFormatError, match="palette index out of range in section 1"):
        decode_chunk(with_body(data, bytes(body)))


@pytest.mark.parametrize("length", [0, 2**16 + 1, 2**32 - 1])
def test_16bit_palette_length_out_of_range(length: int) -> None:
    _, data, _ = _u32_with_a_16bit_palette()
    body = bytearray(parse(data).body)
    struct.pack_into("<I", body, 4, length)  # after the 2-byte mode table and its padding
    with pytest.raises(ChunkFormatError, match="palette length"):
        decode_chunk(with_body(data, bytes(body)))


def test_errors_are_value_errors(terrain_bytes: bytes) -> None:
    with pytest.raises(ValueError, match="checksum"):
        decode_chunk(terrain_bytes[:-1] + bytes([terrain_bytes[-1] ^ 1]))


def test_resealed_flip_of_a_palette_entry_decodes_to_what_the_bytes_say(
    terrain_bytes: bytes,
) -> None:
    """Past the checksum nothing is guessed: a re-sealed edit is data, decoded as written."""
    p = parse(terrain_bytes)
    nsec = p.height // 16
    body = bytearray(p.body)
    pal_off = (nsec + 3) & ~3
    n_uniform = body[:nsec].count(0)
    assert body[nsec - 1] == 0
    struct.pack_into("<H", body, pal_off + 2 * (n_uniform - 1), 17)  # the top section's id
    got = decode_chunk(with_body(terrain_bytes, bytes(body)))
    assert (got[-16:] == 17).all()
    assert reseal(terrain_bytes) == terrain_bytes
