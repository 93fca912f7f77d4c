"""The chunk codec against its baselines, on terrain, real Minecraft chunks and noise.

Groups (read the ratios off each group's medians; the baseline is ``lz4.block-raw``):

- ``codec-encode-terrain`` / ``codec-decode-terrain``: one generated chunk (ids below 32):
  voxeldb with LZ4 (the default) and zstd; lz4.block on the raw array (the speed limit);
  zlib level 6 on the raw array (Minecraft Anvil's way); zstd level 3 on the raw array; a
  naive numpy palette (``np.unique`` per section, minimal bit widths, lz4.block), and the
  seed's representation (one JSON dict per block, ``json.dumps``).
- ``...-held-out``: a held-out chunk with ids far above 32 as a real world numbers them
  (``benchmarks._anvil.anvil_like_terrain``).
- ``...-anvil``: 32 of the 471 real chunks of ``../shared/data/anvil-vanilla-sample``
  (every 15th), per call all 32; the table also gives Anvil's own bytes for them (the
  chunks' ``block_states`` NBT, zlib level 6).
- ``...-noise``: 4096 distinct ids in every section.
- ``voxeldb-into`` decodes into one reused array (``decode_chunk(data, out=...)``), as a
  store filling a preallocated region does: no fresh pages to fault in.

Encoded sizes are in each benchmark's ``extra_info``; a ratio table (time and size against
lz4.block in the same run, with the bars of issue 9 beside the ratios they hold) is printed
at the end of the module when timing is on:

    pytest benchmarks/test_codec_bench.py --benchmark-only --benchmark-columns=median,ops

``scripts/bench_codec_ratios.py`` prints the same ratios over many chunks, with the bars.
"""

from __future__ import annotations

import json
import statistics
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt
import pytest
import zstandard

from benchmarks._anvil import SAMPLE, anvil_like_terrain, load_chunks
from benchmarks._report import print_report
from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.terrain import TERRAIN_STATES, generate_chunk

Array = npt.NDArray[Any]
Codec = tuple[Callable[[Array], bytes], Callable[[bytes], Array]]

TERRAIN = generate_chunk(0, 0, seed=0)
HELD_OUT = anvil_like_terrain(3, -2, seed=5)
_rng = np.random.default_rng(4096)
NOISE = np.stack([_rng.permutation(65536)[:4096] for _ in range(24)]).astype(np.uint16)
NOISE = NOISE.reshape(384, 16, 16)
if (SAMPLE / "region").is_dir():
    _ANVIL = load_chunks()[0][::15]
    ANVIL = [c.blocks for c in _ANVIL]
    ANVIL_BYTES = sum(c.anvil_zlib_bytes for c in _ANVIL)
else:  # the shared data is not there: the anvil group is skipped
    ANVIL, ANVIL_BYTES = [], 0


# --------------------------------------------------------------------------- baselines


def _lz4_encode(a: Array) -> bytes:
    return bytes(lz4.block.compress(a.tobytes(), store_size=False))


def _lz4_decoder(like: Array) -> Callable[[bytes], Array]:
    def decode(data: bytes) -> Array:
        raw = lz4.block.decompress(data, uncompressed_size=like.nbytes)
        return np.frombuffer(raw, like.dtype).reshape(like.shape)

    return decode


def _zstd_raw_codec() -> Codec:
    cctx, dctx = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()

    def encode(a: Array) -> bytes:
        return cctx.compress(a.tobytes())

    return encode, lambda data: np.frombuffer(dctx.decompress(data), np.uint16)


def _voxeldb_into(like: Array) -> Callable[[bytes], Array]:
    out = np.empty_like(like)

    def decode(data: bytes) -> Array:
        return decode_chunk(data, out=out)

    return decode


def _zlib_encode(a: Array) -> bytes:
    return zlib.compress(a.tobytes(), 6)


def _zlib_decoder(like: Array) -> Callable[[bytes], Array]:
    def decode(data: bytes) -> Array:
        return np.frombuffer(zlib.decompress(data), like.dtype).reshape(like.shape)

    return decode


_SECTION = struct.Struct("<HB")


def naive_palette_encode(a: Array) -> bytes:
    """What one writes first: np.unique per section, minimal bit widths, lz4.block."""
    parts = [struct.pack("<HB", a.shape[0], a.dtype.itemsize)]
    for sec in a.reshape(-1, 4096):
        pal, inv = np.unique(sec, return_inverse=True)
        bits = int(len(pal) - 1).bit_length()
        parts.append(_SECTION.pack(len(pal), bits))
        parts.append(pal.tobytes())
        if bits:
            planes = (inv.reshape(-1, 1) >> np.arange(bits)) & 1
            parts.append(np.packbits(planes.astype(np.uint8), bitorder="little").tobytes())
    return bytes(lz4.block.compress(b"".join(parts)))


def naive_palette_decode(data: bytes) -> Array:
    raw = lz4.block.decompress(data)
    height, isz = struct.unpack_from("<HB", raw)
    dt = np.dtype(f"<u{isz}")
    out = np.empty((height // 16, 4096), dt)
    off = 3
    for s in range(height // 16):
        n, bits = _SECTION.unpack_from(raw, off)
        off += _SECTION.size
        pal = np.frombuffer(raw, dt, n, off)
        off += n * isz
        if not bits:
            out[s] = pal[0]
            continue
        nbytes = 4096 * bits // 8
        planes = np.unpackbits(np.frombuffer(raw, np.uint8, nbytes, off), bitorder="little")
        off += nbytes
        idx = planes.reshape(4096, bits).astype(np.intp) @ (1 << np.arange(bits))
        out[s] = pal[idx]
    return out.reshape(height, 16, 16)


_STATE_IDS = {name: i for i, name in enumerate(TERRAIN_STATES)}


def seed_json_encode(a: Array) -> bytes:
    """The seed's representation: every block a JSON dict, the chunk a JSON list of them."""
    names = [TERRAIN_STATES[i] for i in a.reshape(-1).tolist()]
    return json.dumps([{"type": name} for name in names]).encode()


def seed_json_decode(data: bytes) -> Array:
    blocks = json.loads(data)
    ids = [_STATE_IDS[b["type"]] for b in blocks]
    return np.array(ids, dtype=np.uint16).reshape(-1, 16, 16)


def _zstd_encode(a: Array) -> bytes:
    return encode_chunk(a, compression="zstd")


def _codecs(like: Array, *, slow: bool = False, naive: bool = True) -> dict[str, Codec]:
    codecs: dict[str, Codec] = {
        "voxeldb": (encode_chunk, decode_chunk),
        "voxeldb-into": (encode_chunk, _voxeldb_into(like)),
        "voxeldb-zstd": (_zstd_encode, decode_chunk),
        "lz4.block-raw": (_lz4_encode, _lz4_decoder(like)),
        "zlib6-raw": (_zlib_encode, _zlib_decoder(like)),
        "zstd3-raw": _zstd_raw_codec(),
    }
    if naive:
        codecs["naive-numpy-palette"] = (naive_palette_encode, naive_palette_decode)
    if slow:
        codecs["seed-json"] = (seed_json_encode, seed_json_decode)
    return codecs


# case -> (the chunks one call handles, codecs)
CASES: dict[str, tuple[list[Array], dict[str, Codec]]] = {
    "terrain": ([TERRAIN], _codecs(TERRAIN, slow=True)),
    "held-out": ([HELD_OUT], _codecs(HELD_OUT)),
    "noise": ([NOISE], _codecs(NOISE)),
}
if ANVIL:
    CASES["anvil"] = (ANVIL, _codecs(ANVIL[0], naive=False))
PARAMS = [(case, name) for case, (_, codecs) in CASES.items() for name in codecs]

# (case, op) -> codec -> (median seconds, encoded bytes), for the table printed at the end.
_RESULTS: dict[tuple[str, str], dict[str, tuple[float, int]]] = {}


# (case, codec, op) -> the bar of issue 9 on that codec's time against lz4.block-raw.
_TIME_BARS = {
    ("terrain", "voxeldb", "encode"): 4.0,
    ("terrain", "voxeldb", "decode"): 2.0,
    ("held-out", "voxeldb", "encode"): 3.0,
    ("held-out", "voxeldb", "decode"): 1.5,
    ("anvil", "voxeldb-zstd", "encode"): 4.0,
    ("anvil", "voxeldb-zstd", "decode"): 1.5,
}
# case -> the bar on voxeldb's (LZ4) size against lz4.block-raw's.
_SIZE_BARS = {"terrain": 0.65, "held-out": 0.6}
_ANVIL_SIZE_BAR = 0.95  # voxeldb-zstd against Anvil's own bytes


def _bar(value: float, bar: float | None) -> str:
    if bar is None:
        return ""
    return f"  bar {bar}: {'ok' if value <= bar else 'OVER'}"


def _interleaved(case: str, codec: str, op: str, rounds: int = 31) -> float:
    """The median over rounds of ``codec``'s CPU time against lz4.block-raw's, both run in
    every round: pytest-benchmark runs one test after the other, and on a shared machine the
    load changes between them; here both sides of a ratio see the same load."""
    arrays, codecs = CASES[case]
    calls = []
    for name in (codec, "lz4.block-raw"):
        encode, decode = codecs[name]
        if op == "encode":
            calls.append(lambda encode=encode: [encode(a) for a in arrays])
        else:
            data = [encode(a) for a in arrays]
            calls.append(lambda data=data, decode=decode: [decode(d) for d in data])
    repeat = max(1, 16 // len(arrays))  # a round of a few milliseconds, not microseconds
    ratios = []
    for _ in range(rounds):
        spent = []
        for call in calls:
            t0 = time.thread_time()
            for _ in range(repeat):
                call()
            spent.append(time.thread_time() - t0)
        ratios.append(spent[0] / spent[1])
    return statistics.median(ratios)


@pytest.fixture(scope="module", autouse=True)
def _ratio_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _RESULTS:
        return
    lines = [
        f"  {'case':8} {'op':7} {'codec':20} {'median':>10} {'time x':>8} {'bytes':>9} {'size x':>7}"
    ]
    for (case, op), rows in sorted(_RESULTS.items()):
        base_t, base_n = rows.get("lz4.block-raw", (float("nan"), 0))
        for codec, (t, n) in rows.items():
            size_x = n / base_n if base_n else float("nan")
            bars = _bar(t / base_t, _TIME_BARS.get((case, codec, op)))
            if codec == "voxeldb" and op == "encode":
                bars += _bar(size_x, _SIZE_BARS.get(case))
            lines.append(
                f"  {case:8} {op:7} {codec:20} {t * 1e6:8.1f}us {t / base_t:8.2f} "
                f"{n:9d} {size_x:7.3f}{bars}"
            )
        if case == "anvil" and ANVIL_BYTES:
            zstd = rows.get("voxeldb-zstd", (0.0, 0))[1] / ANVIL_BYTES
            lines.append(
                f"  {case:8} {op:7} {'anvil-nbt-zlib6':20} {'':>10} {'':>8} {ANVIL_BYTES:9d} "
                f"{ANVIL_BYTES / base_n if base_n else float('nan'):7.3f}"
                f"   (voxeldb-zstd: {zstd:.3f}x Anvil's bytes{_bar(zstd, _ANVIL_SIZE_BAR)})"
            )
    lines.append("")
    lines.append(
        "  the bars again, both sides timed in every round (thread CPU time, median ratio):"
    )
    for (case, codec, op), bar in _TIME_BARS.items():
        if (case, op) in _RESULTS and codec in _RESULTS[case, op]:
            ratio = _interleaved(case, codec, op)
            lines.append(
                f"  {case:8} {op:7} {codec:20} {ratio:8.2f}x lz4.block-raw{_bar(ratio, bar)}"
            )
    print_report(
        request.config, "codec ratios against lz4.block on the raw array (same run, medians)", lines
    )


def _record(
    benchmark: Any, case: str, op: str, name: str, arrays: list[Array], data: list[bytes]
) -> None:
    size = sum(map(len, data))
    benchmark.extra_info["encoded_bytes"] = size
    benchmark.extra_info["raw_bytes"] = sum(a.nbytes for a in arrays)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _RESULTS.setdefault((case, op), {})[name] = (stats.stats.median, size)


@pytest.mark.parametrize(("case", "name"), PARAMS)
def test_encode(benchmark: Any, case: str, name: str) -> None:
    arrays, codecs = CASES[case]
    encode, decode = codecs[name]
    benchmark.group = f"codec-encode-{case}"
    data = benchmark(lambda: [encode(a) for a in arrays])
    _record(benchmark, case, "encode", name, arrays, data)
    for a, d in zip(arrays, data, strict=True):
        np.testing.assert_array_equal(decode(d).reshape(a.shape), a)
        if name.startswith("voxeldb"):
            assert len(d) <= a.nbytes + 256


@pytest.mark.parametrize(("case", "name"), PARAMS)
def test_decode(benchmark: Any, case: str, name: str) -> None:
    arrays, codecs = CASES[case]
    encode, decode = codecs[name]
    data = [encode(a) for a in arrays]
    benchmark.group = f"codec-decode-{case}"
    if name == "voxeldb-into":  # one reused array per chunk, as a region read would hold
        outs = [np.empty_like(a) for a in arrays]
        decoded = benchmark(
            lambda: [decode_chunk(d, out=o) for d, o in zip(data, outs, strict=True)]
        )
    else:
        decoded = benchmark(lambda: [decode(d) for d in data])
    _record(benchmark, case, "decode", name, arrays, data)
    for a, out in zip(arrays, decoded, strict=True):
        np.testing.assert_array_equal(out.reshape(a.shape), a)
