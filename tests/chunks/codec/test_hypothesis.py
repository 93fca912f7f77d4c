"""Property tests of the chunk codec: lossless round trips and a bounded decoder fuzz."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chunks.codec.helpers import assert_same, parse, reseal, with_body
from voxeldb.chunks.codec import HEADER_SIZE, decode_chunk, encode_chunk
from voxeldb.errors import ChunkFormatError
from voxeldb.terrain import generate_chunk

# No example database: the checkout stays clean and CI runs stay independent.
FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def chunks(draw: st.DrawFn) -> npt.NDArray[np.generic]:
    """Chunks whose sections have 1 to 4096+ distinct ids anywhere in the dtype's range."""
    dtype = draw(st.sampled_from([np.uint16, np.uint32]))
    nsec = draw(st.one_of(st.integers(1, 6), st.sampled_from([24, 64, 256])))
    max_palette = draw(st.sampled_from([1, 2, 3, 4, 5, 16, 17, 256, 257, 2046, 2047, 4096]))
    ids_from = draw(st.sampled_from(["small", "any", "top"]))
    uniform_share = draw(st.sampled_from([0.0, 0.5, 0.9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = int(np.iinfo(dtype).max)
    lo, hi = {"small": (0, 40), "any": (0, top), "top": (top - 6000, top)}[ids_from]
    out = np.empty((nsec, 4096), dtype)
    for s in range(nsec):
        p = 1 if rng.random() < uniform_share else int(rng.integers(1, max_palette + 1))
        p = min(p, hi - lo + 1)
        ids = np.unique(rng.integers(lo, hi, p, endpoint=True, dtype=np.uint64))
        while ids.size < p:
            extra = rng.integers(lo, hi, p, endpoint=True, dtype=np.uint64)
            ids = np.unique(np.concatenate([ids, extra]))[:p]
        ids = ids.astype(dtype)
        sec = ids[rng.integers(0, ids.size, 4096)]
        sec[rng.permutation(4096)[: ids.size]] = ids  # every id really used
        out[s] = sec
    a = out.reshape(nsec * 16, 16, 16)
    if draw(st.booleans()):
        a = np.asfortranarray(a)
    return a


@settings(FAST, max_examples=120)
@given(chunks())
def test_round_trip(a: npt.NDArray[np.generic]) -> None:
    data = encode_chunk(a)
    assert len(data) <= a.nbytes + 256
    assert_same(decode_chunk(data), a)
    assert encode_chunk(np.ascontiguousarray(a)) == data


METHODS = st.one_of(
    st.sampled_from([("lz4", None), ("zstd", None), ("none", None)]),
    st.tuples(st.just("lz4"), st.integers(1, 12)),
    st.tuples(st.just("zstd"), st.integers(1, 12)),  # 13-22 are slow; golden files use 19
)


@settings(FAST, max_examples=120)
@given(chunks(), METHODS, st.booleans())
def test_round_trip_every_compression(
    a: npt.NDArray[np.generic], method: tuple[str, int | None], into: bool
) -> None:
    compression, level = method
    data = encode_chunk(a, compression=compression, level=level)
    assert len(data) <= a.nbytes + 256
    assert data[4] == (2 if data[7] == 2 else 1)
    if into:
        out = np.empty(a.shape, a.dtype)
        assert decode_chunk(data, out=out) is out
        assert_same(out, a)
    else:
        assert_same(decode_chunk(data), a)
    assert encode_chunk(np.ascontiguousarray(a), compression=compression, level=level) == data


@settings(FAST, max_examples=40)
@given(
    st.integers(-1000, 1000),
    st.integers(-1000, 1000),
    st.integers(0, 2**31),
    st.sampled_from([16, 64, 384, 1024]),
    st.sampled_from([np.uint16, np.uint32]),
)
def test_terrain_round_trip(cx: int, cz: int, seed: int, height: int, dtype: type) -> None:
    a = generate_chunk(cx, cz, seed=seed, height=height, min_y=-64).astype(dtype)
    assert_same(decode_chunk(encode_chunk(a)), a)


def _decode_or_format_error(data: bytes | bytearray) -> npt.NDArray[np.generic] | None:
    try:
        return decode_chunk(data)
    except ChunkFormatError as exc:
        assert str(exc)  # says what is wrong
        return None


@settings(FAST, max_examples=300)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert _decode_or_format_error(data) is None


_SAMPLES = [
    encode_chunk(generate_chunk(0, 0, height=64)),
    encode_chunk(np.zeros((32, 16, 16), np.uint32)),
    encode_chunk(np.random.default_rng(0).integers(0, 9, (32, 16, 16)).astype(np.uint16)),
    encode_chunk(generate_chunk(0, 0, height=64), compression="zstd"),
    encode_chunk(np.zeros((32, 16, 16), np.uint32), compression="zstd", level=19),
    encode_chunk(
        np.random.default_rng(0).integers(0, 9, (32, 16, 16)).astype(np.uint16),
        compression="zstd",
    ),
]


@settings(FAST, max_examples=300)
@given(
    st.sampled_from(range(len(_SAMPLES))),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    st.sampled_from(["replace", "insert", "delete"]),
)
def test_fuzz_mutated_chunks(sample: int, edits: list[tuple[int, int]], how: str) -> None:
    """Edits of real encodings: only ChunkFormatError, or (edits undone) the right array."""
    original = _SAMPLES[sample]
    buf = bytearray(original)
    for pos, value in edits:
        i = pos % (len(buf) + (how == "insert"))
        if how == "replace" and i < len(buf):
            buf[i] = value
        elif how == "insert":
            buf.insert(i, value)
        elif how == "delete" and len(buf) > 1:
            del buf[i % len(buf)]
    got = _decode_or_format_error(buf)
    if got is not None:
        assert bytes(buf) == original
        assert_same(got, decode_chunk(original))


@settings(FAST, max_examples=300)
@given(
    st.sampled_from(range(len(_SAMPLES))),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    st.booleans(),
)
def test_fuzz_resealed_bodies(sample: int, edits: list[tuple[int, int]], header: bool) -> None:
    """Edits behind a valid checksum reach every structural check: never anything but
    ChunkFormatError, and whatever decodes has the declared shape and dtype."""
    original = _SAMPLES[sample]
    if header:
        buf = bytearray(original)
        for pos, value in edits:
            buf[4 + pos % (HEADER_SIZE - 8)] = value  # past the magic, before the checksum
        data = reseal(bytes(buf))
    else:
        body = bytearray(parse(original).body)
        for pos, value in edits:
            body[pos % len(body)] = value
        data = with_body(original, bytes(body))
    got = _decode_or_format_error(data)
    if got is not None:
        p = parse(data)
        assert got.shape == (p.height, 16, 16)
        assert got.dtype.itemsize == p.dtype_code
