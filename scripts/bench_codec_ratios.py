"""Print the chunk codec's speed and size as ratios to lz4.block on the same raw array.

Each ratio is measured in the same process, voxeldb and lz4.block interleaved round by round
so that load from other processes hits both alike; times are medians over the rounds.

    python scripts/bench_codec_ratios.py            # 16 terrain chunks + noise
    python scripts/bench_codec_ratios.py --chunks 4 --rounds 15

Targets (the issue's): decode <= 2.0x, encode <= 4.0x, size <= 0.65x lz4.block; noise no
larger than the raw array + 256 bytes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.terrain import generate_chunk

Array = npt.NDArray[Any]


def _per_call(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def measure(a: Array, rounds: int, number: int) -> dict[str, float]:
    raw = a.tobytes()
    ours = encode_chunk(a)
    theirs = lz4.block.compress(raw, store_size=False)
    np.testing.assert_array_equal(decode_chunk(ours), a)
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "encode": (lambda: encode_chunk(a), lambda: lz4.block.compress(raw, store_size=False)),
        "decode": (
            lambda: decode_chunk(ours),
            lambda: np.frombuffer(
                lz4.block.decompress(theirs, uncompressed_size=len(raw)), a.dtype
            ).reshape(a.shape),
        ),
    }
    out = {"bytes": len(ours), "lz4_bytes": len(theirs), "size": len(ours) / len(theirs)}
    for op, (mine, base) in pairs.items():
        mine_t, base_t = [], []
        for _ in range(rounds):
            mine_t.append(_per_call(mine, number))
            base_t.append(_per_call(base, number))
        out[f"{op}_us"] = statistics.median(mine_t) * 1e6
        out[f"{op}_lz4_us"] = statistics.median(base_t) * 1e6
        out[op] = out[f"{op}_us"] / out[f"{op}_lz4_us"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=16, help="terrain chunks to measure")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per chunk")
    parser.add_argument("--number", type=int, default=200, help="calls per round")
    args = parser.parse_args()

    rows = []
    for i in range(args.chunks):
        cx, cz = (0, 0) if i == 0 else (i * 7 - 50, 31 - i * 5)
        a = generate_chunk(cx, cz, seed=i)
        rows.append((f"terrain ({cx},{cz}) seed {i}", measure(a, args.rounds, args.number)))

    header = (
        "| chunk | bytes | lz4 bytes | size x | encode us | lz4 us | encode x "
        "| decode us | lz4 us | decode x |"
    )
    print(header)
    print("|" + "---|" * 10)

    def line(name: str, r: dict[str, float]) -> str:
        return (
            f"| {name} | {r['bytes']:.0f} | {r['lz4_bytes']:.0f} | {r['size']:.3f} "
            f"| {r['encode_us']:.1f} | {r['encode_lz4_us']:.1f} | {r['encode']:.2f} "
            f"| {r['decode_us']:.1f} | {r['decode_lz4_us']:.1f} | {r['decode']:.2f} |"
        )

    for name, r in rows:
        print(line(name, r))
    med = {k: statistics.median(r[k] for _, r in rows) for k in rows[0][1]}
    print(line(f"**median of {len(rows)}**", med))

    rng = np.random.default_rng(0)
    noise = np.stack([rng.permutation(65536)[:4096] for _ in range(24)]).astype(np.uint16)
    noise = noise.reshape(384, 16, 16)
    n = measure(noise, max(3, args.rounds // 4), max(10, args.number // 10))
    print(line("noise (4096 ids per section)", n))
    print(
        f"\nnoise: {n['bytes']:.0f} bytes for a {noise.nbytes}-byte array "
        f"(+{n['bytes'] - noise.nbytes:.0f}; limit +256)"
    )
    print(
        f"terrain medians: decode {med['decode']:.2f}x (<= 2.0), encode {med['encode']:.2f}x "
        f"(<= 4.0), size {med['size']:.3f}x (<= 0.65) of lz4.block on the raw array"
    )


if __name__ == "__main__":
    main()
