"""The chunk codec against its baselines, on one typical terrain chunk and on noise.

Groups (read the ratios off each group's medians; the baseline is ``lz4.block-raw``):

- ``codec-encode-terrain`` / ``codec-decode-terrain``: voxeldb; lz4.block on the raw array
  (the speed limit); zlib level 6 on the raw array (Minecraft Anvil's way); a naive numpy
  palette (``np.unique`` per section, minimal bit widths, lz4.block), and the seed's
  representation (one JSON dict per block, ``json.dumps``).
- ``codec-encode-noise`` / ``codec-decode-noise``: 4096 distinct ids in every section.

Encoded sizes are in each benchmark's ``extra_info``; a ratio table (time and size against
lz4.block in the same run) is printed at the end of the module when timing is on:

    pytest benchmarks/test_codec_bench.py --benchmark-only --benchmark-columns=median,ops

``scripts/bench_codec_ratios.py`` prints the same ratios over many terrain chunks.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt
import pytest

from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.terrain import TERRAIN_STATES, generate_chunk

Array = npt.NDArray[Any]
Codec = tuple[Callable[[Array], bytes], Callable[[bytes], Array]]

TERRAIN = generate_chunk(0, 0, seed=0)
_rng = np.random.default_rng(4096)
NOISE = np.stack([_rng.permutation(65536)[:4096] for _ in range(24)]).astype(np.uint16)
NOISE = NOISE.reshape(384, 16, 16)


# --------------------------------------------------------------------------- baselines


def _lz4_encode(a: Array) -> bytes:
    return bytes(lz4.block.compress(a.tobytes(), store_size=False))


def _lz4_decoder(like: Array) -> Callable[[bytes], Array]:
    def decode(data: bytes) -> Array:
        raw = lz4.block.decompress(data, uncompressed_size=like.nbytes)
        return np.frombuffer(raw, like.dtype).reshape(like.shape)

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


def _codecs(like: Array, *, slow: bool) -> dict[str, Codec]:
    codecs: dict[str, Codec] = {
        "voxeldb": (encode_chunk, decode_chunk),
        "lz4.block-raw": (_lz4_encode, _lz4_decoder(like)),
        "zlib6-anvil": (_zlib_encode, _zlib_decoder(like)),
        "naive-numpy-palette": (naive_palette_encode, naive_palette_decode),
    }
    if slow:
        codecs["seed-json"] = (seed_json_encode, seed_json_decode)
    return codecs


CASES: dict[str, tuple[Array, dict[str, Codec]]] = {
    "terrain": (TERRAIN, _codecs(TERRAIN, slow=True)),
    "noise": (NOISE, _codecs(NOISE, slow=False)),
}
PARAMS = [(case, name) for case, (_, codecs) in CASES.items() for name in codecs]

# (case, op) -> codec -> (median seconds, encoded bytes), for the table printed at the end.
_RESULTS: dict[tuple[str, str], dict[str, tuple[float, int]]] = {}


@pytest.fixture(scope="module", autouse=True)
def _ratio_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _RESULTS:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "codec ratios against lz4.block on the raw array (same run, medians):"]
    lines.append(
        f"  {'case':8} {'op':7} {'codec':20} {'median':>10} {'time x':>8} {'bytes':>9} {'size x':>7}"
    )
    for (case, op), rows in sorted(_RESULTS.items()):
        base_t, base_n = rows.get("lz4.block-raw", (float("nan"), 0))
        for codec, (t, n) in rows.items():
            lines.append(
                f"  {case:8} {op:7} {codec:20} {t * 1e6:8.1f}us {t / base_t:8.2f} "
                f"{n:9d} {n / base_n if base_n else float('nan'):7.3f}"
            )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    # Shown without -s: output written in a fixture teardown is captured otherwise.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            if tr is not None:
                tr.write_line(line)
            else:
                print(line)


def _record(benchmark: Any, case: str, op: str, name: str, a: Array, data: bytes) -> None:
    benchmark.extra_info["encoded_bytes"] = len(data)
    benchmark.extra_info["raw_bytes"] = a.nbytes
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _RESULTS.setdefault((case, op), {})[name] = (stats.stats.median, len(data))


@pytest.mark.parametrize(("case", "name"), PARAMS)
def test_encode(benchmark: Any, case: str, name: str) -> None:
    a, codecs = CASES[case]
    encode, decode = codecs[name]
    benchmark.group = f"codec-encode-{case}"
    data = benchmark(encode, a)
    _record(benchmark, case, "encode", name, a, data)
    np.testing.assert_array_equal(decode(data), a)
    if name == "voxeldb":
        assert len(data) <= a.nbytes + 256


@pytest.mark.parametrize(("case", "name"), PARAMS)
def test_decode(benchmark: Any, case: str, name: str) -> None:
    a, codecs = CASES[case]
    encode, decode = codecs[name]
    data = encode(a)
    benchmark.group = f"codec-decode-{case}"
    out = benchmark(decode, data)
    _record(benchmark, case, "decode", name, a, data)
    np.testing.assert_array_equal(out, a)
