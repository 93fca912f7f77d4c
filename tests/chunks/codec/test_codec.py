"""encode_chunk / decode_chunk as callers use them: round trips, inputs, array checks."""

from __future__ import annotations

import lz4.block
import numpy as np
import numpy.typing as npt
import pytest

from tests.chunks.codec.helpers import assert_same
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


def test_terrain_round_trip_and_size(terrain: npt.NDArray[np.uint16], terrain_bytes: bytes) -> None:
    assert_same(decode_chunk(terrain_bytes), terrain)
    # Far below lz4 on the raw array, which is itself ~40x below the raw array.
    raw_lz4 = lz4.block.compress(terrain.tobytes(), store_size=False)
    assert len(terrain_bytes) < 0.65 * len(raw_lz4)
    assert terrain_bytes[:4] == MAGIC
    assert terrain_bytes[4] == 1  # LZ4 chunks are still written in version 1
    assert FORMAT_VERSION == 2


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


# ------------------------------------------------------------------ decoding into given memory


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_decode_into_a_view_of_a_region_array(compression: str, dtype: type) -> None:
    """A store can decode a region into one preallocated array, chunk by chunk."""
    rng = np.random.default_rng(3)
    chunks = [generate_chunk(i, -i, seed=4, height=64, min_y=-64).astype(dtype) for i in range(3)]
    chunks.append(rng.integers(0, 60000, (64, 16, 16)).astype(dtype))  # plain body
    region = np.full((len(chunks), 64, 16, 16), 7, dtype)
    for i, a in enumerate(chunks):
        data = encode_chunk(a, compression=compression)
        view = region[i]
        assert decode_chunk(data, out=view) is view
    for i, a in enumerate(chunks):
        assert_same(region[i], a)


def test_decode_into_leaves_the_input_alone(terrain: npt.NDArray[np.uint16]) -> None:
    data = bytearray(encode_chunk(terrain, compression="none"))
    out = np.empty_like(terrain)
    decode_chunk(data, out=out)
    out[:] = 0
    assert_same(decode_chunk(bytes(data)), terrain)


@pytest.mark.parametrize(
    "out",
    [
        np.empty((384, 16, 16), np.uint32),  # other item size
        np.empty((384, 16, 16), np.int16),  # signed
        np.empty((368, 16, 16), np.uint16),  # other height
        np.empty((384, 16, 32), np.uint16)[:, :, ::2],  # not contiguous
        np.empty((384, 16, 16), ">u2"),  # not native
        [0] * 10,
    ],
)
def test_decode_into_the_wrong_array(terrain_bytes: bytes, out: object) -> None:
    with pytest.raises(ChunkFormatError, match="out"):
        decode_chunk(terrain_bytes, out=out)  # type: ignore[arg-type]


def test_decode_into_a_read_only_array(terrain_bytes: bytes) -> None:
    out = np.empty((384, 16, 16), np.uint16)
    out.flags.writeable = False
    with pytest.raises(ChunkFormatError, match="writable"):
        decode_chunk(terrain_bytes, out=out)


def test_fresh_arrays_are_writable_and_own_their_memory(terrain: npt.NDArray[np.uint16]) -> None:
    for compression in ("lz4", "zstd", "none"):
        a = decode_chunk(encode_chunk(terrain, compression=compression))
        assert a.flags.writeable
        a[0, 0, 0] += 1  # never aliases anything shared
