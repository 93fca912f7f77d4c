"""The compressor step: used only where it pays, and payloads that lie about their size."""

from __future__ import annotations

from dataclasses import replace

import lz4.block
import numpy as np
import pytest

from tests.chunks.codec.helpers import FLAG_LZ4, parse, seal
from voxeldb.chunks.codec import HEADER_SIZE, _compress, _frame, decode_chunk
from voxeldb.chunks.codec._compress import (
    LZ4,
    MAX_BODY_SIZE,
    Compressor,
    compress,
    decompress,
)
from voxeldb.errors import ChunkFormatError


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


# ------------------------------------------------------------------ the step on its own


def test_compresses_only_where_it_pays() -> None:
    terrain_like = bytes(1000) + b"\x01" * 1000
    flag, payload = compress(terrain_like)
    assert flag == LZ4.flag == FLAG_LZ4
    assert len(payload) < len(terrain_like)
    noise = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    assert compress(noise) == (0, noise)


def test_decompress_returns_exactly_the_body() -> None:
    body = bytes(range(256)) * 40
    flag, payload = compress(body)
    assert bytes(decompress(flag, memoryview(payload), len(body), writable=False)) == body
    writable = decompress(flag, memoryview(payload), len(body), writable=True)
    assert isinstance(writable, bytearray)
    assert decompress(0, memoryview(body), len(body), writable=False) == body


def test_a_size_past_the_limit_never_reaches_the_compressor() -> None:
    class Exploding:
        flag = FLAG_LZ4
        name = "test"

        def compress(self, body: bytes) -> bytes:
            raise AssertionError

        def decompress(
            self, payload: bytes | memoryview, size: int, *, writable: bool
        ) -> bytes | bytearray:
            raise AssertionError(f"asked to allocate {size} bytes")

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_compress.COMPRESSORS, FLAG_LZ4, Exploding())
        with pytest.raises(ChunkFormatError, match="limit"):
            decompress(FLAG_LZ4, memoryview(bytes(10)), MAX_BODY_SIZE + 1, writable=False)


def test_another_compressor_plugs_in_by_its_flag() -> None:
    """What a second compressor needs: the interface, and its own header bit."""

    class Halving:
        flag = 0x04
        name = "halving"

        def compress(self, body: bytes) -> bytes:
            return body[::2]

        def decompress(
            self, payload: bytes | memoryview, size: int, *, writable: bool
        ) -> bytes | bytearray:
            return bytes(b for b in bytes(payload) for _ in (0, 1))[:size]

    halving: Compressor = Halving()
    body = bytes(b for b in range(100) for _ in (0, 1))
    flag, payload = compress(body, halving)
    assert (flag, len(payload)) == (0x04, 100)
    assert halving.decompress(payload, len(body), writable=False) == body
    assert LZ4.flag not in (0, 0x04, _frame.FLAG_PLAIN)  # bits must not collide
