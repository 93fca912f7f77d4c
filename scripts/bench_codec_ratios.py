"""Print the chunk codec's speed and size as ratios to its baselines, measured in one run.

Every codec of a case runs over the same chunks round after round, interleaved, so that
load from other processes hits all alike; times are medians over the rounds, per chunk, and
each ratio is the median over the rounds of that round's ratio (a round takes milliseconds,
so both sides of a ratio see the same load). Times are the thread's CPU time by default
(``--clock cpu``): on a shared machine, time spent descheduled is not the codec's; ``--clock
wall`` uses ``time.perf_counter`` instead.

    python scripts/bench_codec_ratios.py                # all cases
    python scripts/bench_codec_ratios.py --rounds 5 --case anvil

Cases and the bars they are held to (issue 9):

- ``terrain``: 16 generated chunks (ids below 32), codec lz4 against ``lz4.block`` on the
  raw array: decode <= 2.0x, encode <= 4.0x, size <= 0.65x (the first bars).
- ``held-out``: 16 chunks of ``benchmarks._anvil.anvil_like_terrain`` (ids far above 32,
  20-30 per chunk, as a real world numbers them), codec lz4 against ``lz4.block`` of the raw
  array: decode <= 1.5x, encode <= 3.0x, size <= 0.6x.
- ``anvil``: the 471 full chunks of ``../shared/data/anvil-vanilla-sample``, codec zstd
  (level 3) against Anvil's own storage of the same blocks (each chunk's ``block_states``
  NBT tags, zlib level 6: size <= 0.95x) and ``lz4.block`` of the raw array (decode <= 1.5x,
  encode <= 4.0x). Level 19, LZ4 and zstd/zlib of the raw array are shown beside.
- ``noise``: 4096 distinct ids in every section: no larger than the raw array + 256 bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for benchmarks._anvil

from benchmarks._anvil import anvil_like_terrain, load_chunks

from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.terrain import generate_chunk

Array = npt.NDArray[Any]
CLOCK: Callable[[], float] = time.thread_time
Encoder = Callable[[Array], bytes]
Decoder = Callable[[bytes, Array], Any]  # (data, the original for shape/dtype)


def _voxeldb(compression: str, level: int | None = None) -> tuple[Encoder, Decoder]:
    return (
        lambda a: encode_chunk(a, compression=compression, level=level),
        lambda d, a: decode_chunk(d),
    )


def _raw_lz4() -> tuple[Encoder, Decoder]:
    return (
        lambda a: lz4.block.compress(a.tobytes(), store_size=False),
        lambda d, a: np.frombuffer(
            lz4.block.decompress(d, uncompressed_size=a.nbytes), a.dtype
        ).reshape(a.shape),
    )


def _raw_zlib6() -> tuple[Encoder, Decoder]:
    return (
        lambda a: zlib.compress(a.tobytes(), 6),
        lambda d, a: np.frombuffer(zlib.decompress(d), a.dtype).reshape(a.shape),
    )


def _raw_zstd3() -> tuple[Encoder, Decoder]:
    cctx, dctx = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    return (
        lambda a: cctx.compress(a.tobytes()),
        lambda d, a: np.frombuffer(dctx.decompress(d), a.dtype).reshape(a.shape),
    )


def measure(
    arrays: Sequence[Array],
    codecs: dict[str, tuple[Encoder, Decoder]],
    rounds: dict[str, int],
    base: str,
    batch: int = 16,
) -> dict[str, dict[str, float]]:
    """Per codec: bytes (total), encode_us and decode_us (median per chunk over rounds) and
    encode_x / decode_x (median over rounds of the time against ``base`` in that round).

    A round runs one batch of ``batch`` chunks through every codec (the next round the next
    batch), so the two sides of a ratio run milliseconds apart; ``rounds`` counts passes
    over all the chunks.
    """
    encoded = {name: [enc(a) for a in arrays] for name, (enc, _) in codecs.items()}
    for name, (_, dec) in codecs.items():  # every codec is lossless here
        for a, d in zip(arrays, encoded[name], strict=True):
            np.testing.assert_array_equal(dec(d, a), a, err_msg=name)
    times: dict[str, dict[str, list[float]]] = {n: {"encode": [], "decode": []} for n in codecs}
    starts = range(0, len(arrays), batch)
    for r in range(max(rounds.values())):
        for lo in starts:
            part = arrays[lo : lo + batch]
            for name, (enc, dec) in codecs.items():
                if r >= rounds.get(name, rounds["*"]):
                    continue
                data = encoded[name][lo : lo + batch]
                t0 = CLOCK()
                for a in part:
                    enc(a)
                t1 = CLOCK()
                for a, d in zip(part, data, strict=True):
                    dec(d, a)
                t2 = CLOCK()
                times[name]["encode"].append((t1 - t0) / len(part))
                times[name]["decode"].append((t2 - t1) / len(part))
    out = {}
    for name in codecs:
        row = {"bytes": float(sum(map(len, encoded[name])))}
        for op in ("encode", "decode"):
            mine = times[name][op]
            row[f"{op}_us"] = statistics.median(mine) * 1e6
            # Rounds line up with the baseline's (the baseline runs in every round).
            row[f"{op}_x"] = statistics.median(
                m / b for m, b in zip(mine, times[base][op], strict=False)
            )
        out[name] = row
    return out


def table(
    title: str, rows: dict[str, dict[str, float]], base: str, size_base: tuple[str, float]
) -> None:
    size_name, size_bytes = size_base
    print(f"\n### {title}\n")
    print(
        f"| codec | bytes | size x {size_name} | encode us | encode x {base} "
        f"| decode us | decode x {base} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['bytes']:.0f} | {r['bytes'] / size_bytes:.3f} "
            f"| {r['encode_us']:.1f} | {r['encode_x']:.2f} "
            f"| {r['decode_us']:.1f} | {r['decode_x']:.2f} |"
        )


def _bar(label: str, value: float, limit: float) -> str:
    return f"{label} {value:.2f}x (<= {limit}) {'ok' if value <= limit else 'OVER'}"


def run_generated(name: str, arrays: list[Array], rounds: int, bars: tuple[float, ...]) -> None:
    codecs = {"voxeldb lz4": _voxeldb("lz4"), "lz4.block raw": _raw_lz4()}
    rows = measure(arrays, codecs, {"*": rounds}, "lz4.block raw", batch=2)
    base = rows["lz4.block raw"]
    table(name, rows, "lz4.block raw", ("lz4.block raw", base["bytes"]))
    ours = rows["voxeldb lz4"]
    print(
        "\n"
        + "; ".join(
            [
                _bar("decode", ours["decode_x"], bars[0]),
                _bar("encode", ours["encode_x"], bars[1]),
                _bar("size", ours["bytes"] / base["bytes"], bars[2]),
            ]
        )
    )


def run_anvil(rounds: int) -> None:
    chunks, names = load_chunks()
    arrays = [c.blocks for c in chunks]
    anvil = float(sum(c.anvil_zlib_bytes for c in chunks))
    stored = sum(c.stored_bytes for c in chunks)
    # Two groups, each with the baseline: the slow codecs' large tables would otherwise
    # evict the fast ones' from the caches between batches, which a store running one
    # compressor never sees.
    fast = {
        "voxeldb zstd (3)": _voxeldb("zstd"),
        "voxeldb lz4": _voxeldb("lz4"),
        "lz4.block raw": _raw_lz4(),
        "zstd-3 raw": _raw_zstd3(),
    }
    slow = {
        "voxeldb zstd 9": _voxeldb("zstd", 9),
        "voxeldb zstd 19": _voxeldb("zstd", 19),
        "voxeldb lz4 9 (HC)": _voxeldb("lz4", 9),
        "zlib-6 raw": _raw_zlib6(),
        "lz4.block raw": _raw_lz4(),
    }
    rows = measure(arrays, fast, {"*": rounds}, "lz4.block raw", batch=8)
    slow_rows = measure(arrays, slow, {"*": max(1, rounds // 5)}, "lz4.block raw", batch=8)
    rows.update((k, v) for k, v in slow_rows.items() if k != "lz4.block raw")
    print(
        f"\n{len(chunks)} full chunks, {len(names)} distinct states; Anvil's block_states "
        f"NBT zlib-6: {anvil:.0f} bytes (whole chunks as stored, all data: {stored} bytes)"
    )
    table("Anvil sample (471 real chunks)", rows, "lz4.block raw", ("Anvil", anvil))
    z, z19 = rows["voxeldb zstd (3)"], rows["voxeldb zstd 19"]
    print(
        "\nzstd (3): "
        + "; ".join(
            [
                _bar("size vs Anvil", z["bytes"] / anvil, 0.95),
                _bar("decode", z["decode_x"], 1.5),
                _bar("encode", z["encode_x"], 4.0),
            ]
        )
    )
    print(
        f"zstd 19: size {z19['bytes'] / anvil:.3f}x Anvil, encode {z19['encode_x']:.1f}x, "
        f"decode {z19['decode_x']:.2f}x lz4.block raw"
    )


def run_noise(rounds: int) -> None:
    rng = np.random.default_rng(0)
    noise = np.stack([rng.permutation(65536)[:4096] for _ in range(24)]).astype(np.uint16)
    noise = noise.reshape(384, 16, 16)
    codecs = {
        "voxeldb lz4": _voxeldb("lz4"),
        "voxeldb zstd": _voxeldb("zstd"),
        "lz4.block raw": _raw_lz4(),
    }
    rows = measure([noise], codecs, {"*": rounds}, "lz4.block raw")
    table("noise (4096 ids per section)", rows, "lz4.block raw", ("raw array", noise.nbytes))
    worst = max(r["bytes"] for n, r in rows.items() if n.startswith("voxeldb"))
    print(f"\nnoise: at most {worst - noise.nbytes:+.0f} bytes over the raw array (limit +256)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="passes over the chunks")
    parser.add_argument("--chunks", type=int, default=16, help="generated chunks per case")
    parser.add_argument(
        "--case", action="append", choices=["terrain", "held-out", "anvil", "noise"]
    )
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    cases = args.case or ["terrain", "held-out", "anvil", "noise"]
    coords = [(0, 0) if i == 0 else (i * 7 - 50, 31 - i * 5) for i in range(args.chunks)]
    if "terrain" in cases:
        arrays = [generate_chunk(cx, cz, seed=i) for i, (cx, cz) in enumerate(coords)]
        run_generated("generated terrain (ids < 32)", arrays, args.rounds, (2.0, 4.0, 0.65))
    if "held-out" in cases:
        arrays = [anvil_like_terrain(cx, cz, seed=i) for i, (cx, cz) in enumerate(coords)]
        run_generated("held-out terrain (ids above 32)", arrays, args.rounds, (1.5, 3.0, 0.6))
    if "anvil" in cases:
        run_anvil(args.rounds)
    if "noise" in cases:
        run_noise(max(3, args.rounds // 3))


if __name__ == "__main__":
    main()
