"""The compressor step: names and levels, used only where it pays, payloads that lie."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import lz4.block
import numpy as np
import numpy.typing as npt
import pytest
import zstandard

from tests.chunks.codec.helpers import FLAG_LZ4, LZ4_ID, ZSTD_ID, compress_as, parse, seal
from voxeldb.chunks.codec import HEADER_SIZE, _compress, decode_chunk, encode_chunk
from voxeldb.chunks.codec._compress import (
    LZ4,
    MAX_BODY_SIZE,
    ZSTD,
    Method,
    compress,
    decompress,
    resolve,
)
from voxeldb.errors import ChunkFormatError, ValidationError

METHODS = [("lz4", None), ("lz4", 1), ("lz4", 12), ("zstd", None), ("zstd", 1), ("zstd", 19)]


@pytest.fixture(scope="module", params=["lz4", "zstd"])
def packed(request: pytest.FixtureRequest, terrain: npt.NDArray[np.uint16]) -> bytes:
    """Terrain encoded with each compressor."""
    return encode_chunk(terrain, compression=request.param)


def _name(p: bytes) -> str:
    return "LZ4" if p[4] == 1 else "zstd"


# ------------------------------------------------------------------ names and levels


@pytest.mark.parametrize("compression", ["LZ4", "zlib", "", "gzip", None, 1, b"lz4"])
def test_unknown_compression_is_a_validation_error(
    terrain: npt.NDArray[np.uint16], compression: object
) -> None:
    with pytest.raises(ValidationError, match="unknown compression") as info:
        encode_chunk(terrain, compression=compression)  # type: ignore[arg-type]
    assert info.value.field == "compression"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("compression", "level"),
    [
        ("lz4", 0),
        ("lz4", 13),
        ("lz4", -1),
        ("zstd", 0),
        ("zstd", 23),
        ("zstd", -5),
        ("zstd", True),
        ("zstd", 3.0),
        ("lz4", "9"),
        ("none", 1),
        ("none", 0),
    ],
)
def test_bad_level_is_a_validation_error(
    terrain: npt.NDArray[np.uint16], compression: str, level: object
) -> None:
    with pytest.raises(ValidationError, match="level") as info:
        encode_chunk(terrain, compression=compression, level=level)  # type: ignore[arg-type]
    assert info.value.field == "compression_level"


def test_resolve_names_every_compressor() -> None:
    assert resolve("lz4") == Method(LZ4, None)
    assert resolve("zstd", 22) == Method(ZSTD, 22)
    assert resolve("none") == Method(None, None)
    assert _compress.COMPRESSIONS == ("lz4", "zstd", "none")


@pytest.mark.parametrize(("compression", "level"), METHODS)
def test_every_method_round_trips(
    terrain: npt.NDArray[np.uint16], compression: str, level: int | None
) -> None:
    data = encode_chunk(terrain, compression=compression, level=level)
    np.testing.assert_array_equal(decode_chunk(data), terrain)
    assert data[4] == (2 if compression == "zstd" else 1)


def test_levels_trade_time_for_size(terrain: npt.NDArray[np.uint16]) -> None:
    size = {m: len(encode_chunk(terrain, compression=m[0], level=m[1])) for m in METHODS}
    none = len(encode_chunk(terrain, compression="none"))
    assert size[("lz4", 12)] < size[("lz4", None)] < none
    assert size[("zstd", 19)] < size[("zstd", None)] < size[("lz4", None)]


def test_zstd_contexts_are_per_thread(terrain: npt.NDArray[np.uint16]) -> None:
    arrays = [np.roll(terrain, k, axis=2) for k in range(8)]
    expected = [encode_chunk(a, compression="zstd") for a in arrays]

    def work(k: int) -> bool:
        for _ in range(20):
            data = encode_chunk(arrays[k], compression="zstd", level=1 + k % 3 * 2)
            if not np.array_equal(decode_chunk(data), arrays[k]):
                return False
            if encode_chunk(arrays[k], compression="zstd") != expected[k]:
                return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(8)))


# ------------------------------------------------------------------ payloads that lie


@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_declared_body_size_that_the_payload_disagrees_with(packed: bytes, delta: int) -> None:
    p = parse(packed)
    payload = packed[HEADER_SIZE:]
    with pytest.raises(ChunkFormatError, match=r"LZ4|zstd|corrupt"):
        decode_chunk(seal(replace(p, body_size=p.body_size + delta), payload))


def test_payload_that_does_not_decompress(packed: bytes) -> None:
    p = parse(packed)
    junk = b"\xff" * 200
    with pytest.raises(ChunkFormatError, match=_name(packed)):
        decode_chunk(seal(replace(p, payload_size=len(junk)), junk))


def test_zstd_frame_with_a_damaged_block(terrain: npt.NDArray[np.uint16]) -> None:
    data = encode_chunk(terrain, compression="zstd")
    p = parse(data)
    payload = bytearray(data[HEADER_SIZE:])
    for at in range(12, len(payload), max(1, len(payload) // 50)):
        bad = bytearray(payload)
        bad[at] ^= 0xFF
        try:
            out = decode_chunk(seal(p, bytes(bad)))
        except ChunkFormatError:
            continue
        # zstd cannot always tell (a literal byte changed): the array is then still whole,
        # and the chunk's own checksum is what catches real corruption.
        assert out.shape == terrain.shape


@pytest.mark.parametrize("extra", [b"\x00", b"junk", "frame"])
def test_zstd_payload_with_trailing_data(
    terrain: npt.NDArray[np.uint16], extra: bytes | str
) -> None:
    data = encode_chunk(terrain, compression="zstd")
    p = parse(data)
    payload = data[HEADER_SIZE:]
    tail = payload if extra == "frame" else extra
    assert isinstance(tail, bytes)
    with pytest.raises(ChunkFormatError, match="zstd"):
        decode_chunk(seal(replace(p, payload_size=len(payload) + len(tail)), payload + tail))


def test_zstd_frame_without_its_content_size(terrain: npt.NDArray[np.uint16]) -> None:
    data = encode_chunk(terrain, compression="zstd")
    p = parse(data)
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(p.body)
    with pytest.raises(ChunkFormatError, match="zstd frame declares"):
        decode_chunk(seal(replace(p, payload_size=len(frame)), frame))


def test_zstd_bomb_is_rejected_before_decompressing(terrain: npt.NDArray[np.uint16]) -> None:
    """A small frame that expands to 64 MiB: its declared size is checked, nothing allocated."""
    data = encode_chunk(terrain, compression="zstd")
    p = parse(data)
    cctx = zstandard.ZstdCompressor(level=1)
    bomb = cctx.compressobj(size=64 << 20)
    frame = b"".join([*(bomb.compress(bytes(1 << 20)) for _ in range(64)), bomb.flush()])
    assert zstandard.frame_content_size(frame) == 64 << 20
    assert len(frame) < p.body_size
    with pytest.raises(ChunkFormatError, match="zstd frame declares"):
        decode_chunk(seal(replace(p, payload_size=len(frame)), frame))


def test_lz4_bomb_is_rejected_before_decompressing(terrain: npt.NDArray[np.uint16]) -> None:
    data = encode_chunk(terrain)
    p = parse(data)
    payload = lz4.block.compress(bytes(8 << 20), store_size=False)
    with pytest.raises(ChunkFormatError, match="limit"):
        decode_chunk(seal(replace(p, body_size=8 << 20, payload_size=len(payload)), payload))


def test_uncompressed_payload_of_the_wrong_size(terrain_bytes: bytes) -> None:
    p = parse(terrain_bytes)
    body = p.body
    with pytest.raises(ChunkFormatError, match="header says"):
        decode_chunk(
            seal(replace(p, flags=0, body_size=len(body) - 4, payload_size=len(body)), body)
        )


def test_compressor_on_a_payload_that_is_not_smaller(packed: bytes) -> None:
    p = parse(packed)
    payload = compress_as(p, p.body) + bytes(p.body_size)
    with pytest.raises(ChunkFormatError, match=_name(packed)):
        decode_chunk(seal(replace(p, payload_size=len(payload)), payload))


# ------------------------------------------------------------------ the step on its own


def test_compresses_only_where_it_pays() -> None:
    terrain_like = bytes(1000) + b"\x01" * 1000
    for method in (resolve("lz4"), resolve("lz4", 9), resolve("zstd"), resolve("zstd", 19)):
        assert method.compressor is not None
        which, payload = compress(terrain_like, method)
        assert which == method.compressor.id
        assert len(payload) < len(terrain_like)
    assert LZ4.id == LZ4_ID == FLAG_LZ4
    assert ZSTD.id == ZSTD_ID
    noise = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    assert compress(noise) == (0, noise)
    assert compress(noise, resolve("zstd")) == (0, noise)
    assert compress(terrain_like, resolve("none")) == (0, terrain_like)


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_decompress_returns_exactly_the_body(compression: str) -> None:
    body = bytes(range(256)) * 40
    which, payload = compress(body, resolve(compression))
    assert bytes(decompress(which, memoryview(payload), len(body), writable=False)) == body
    writable = decompress(which, memoryview(payload), len(body), writable=True)
    assert isinstance(writable, bytearray)
    assert writable == body
    assert decompress(0, memoryview(body), len(body), writable=False) == body


def test_unknown_compressor_id() -> None:
    with pytest.raises(ChunkFormatError, match="compressor id 7"):
        decompress(7, memoryview(bytes(10)), 100, writable=False)


@pytest.mark.parametrize("which", [LZ4_ID, ZSTD_ID])
def test_a_size_past_the_limit_never_reaches_the_compressor(which: int) -> None:
    class Exploding:
        id = which
        name = "test"
        levels = range(1, 2)

        def compress(self, body: bytes, level: int | None) -> bytes:
            raise AssertionError

        def decompress(
            self, payload: bytes | memoryview, size: int, *, writable: bool
        ) -> bytes | bytearray:
            raise AssertionError(f"asked to allocate {size} bytes")

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_compress.COMPRESSORS, which, Exploding())  # type: ignore[arg-type]
        with pytest.raises(ChunkFormatError, match="limit"):
            decompress(which, memoryview(bytes(10)), MAX_BODY_SIZE + 1, writable=False)


def test_check_compression_is_what_a_store_calls() -> None:
    from voxeldb.chunks.codec import COMPRESSIONS, check_compression

    for name in COMPRESSIONS:
        check_compression(name)
    check_compression("zstd", 19)
    with pytest.raises(ValidationError, match="unknown compression"):
        check_compression("brotli")
    with pytest.raises(ValidationError, match="level"):
        check_compression("lz4", 40)


def test_chunk_encoder_binds_what_it_checked() -> None:
    from voxeldb.chunks.codec import chunk_encoder, encode_chunk
    from voxeldb.terrain import generate_chunk

    blocks = generate_chunk(2, 3)
    for name, level in (("lz4", None), ("zstd", 5), ("none", None)):
        assert chunk_encoder(name, level)(blocks) == encode_chunk(
            blocks, compression=name, level=level
        )
    with pytest.raises(ValidationError, match="unknown compression"):
        chunk_encoder("brotli")
    with pytest.raises(ValidationError, match="level"):
        chunk_encoder("zstd", 99)
