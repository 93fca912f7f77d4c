"""Write the chunk codec's golden files: ``tests/fixtures/golden/NAME.npy`` and ``NAME.bin``.

The ``.npy`` arrays are the inputs and the ``.bin`` files their encoding: ``NAME.bin`` with
the default compression (LZ4, format version 1), ``NAME@METHOD.bin`` with another one
(``zstd``, ``zstd-19``, ``none``, ``lz4-9``: compression and level), decoding to ``NAME.npy``.
The tests decode every ``.bin`` and compare it with its array, and check that encoding the
array today gives the same bytes, so the format stays frozen. ``ZSTD_VERSION`` records the
libzstd that made the zstd files: zstd may compress differently in another release (the
tests then compare the decompressed body instead of the payload bytes).

Rerun this only on purpose: with a new format version, keep the old ``.bin`` files (renamed
``NAME.vN.bin``) so old data keeps decoding.

    python scripts/make_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import zstandard

from voxeldb.chunks.codec import encode_chunk
from voxeldb.terrain import generate_chunk

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "golden"


def _section(rng: np.random.Generator, ids: npt.ArrayLike, dtype: type) -> npt.NDArray[np.generic]:
    """A 16x16x16 section using every id of ``ids`` at least once, the rest at random."""
    ids = np.asarray(ids, dtype=dtype)
    sec = ids[rng.integers(0, ids.size, 4096)]
    sec[: ids.size] = ids
    rng.shuffle(sec)
    return sec.reshape(16, 16, 16)


def mixed_u16() -> npt.NDArray[np.uint16]:
    """Every section mode of a uint16 chunk, groups not contiguous: a reader's test bed."""
    rng = np.random.default_rng(16)
    u = np.uint16
    sections = [
        np.full((16, 16, 16), 7, u),  # uniform
        _section(rng, [3, 900], u),  # 4-bit, palette padded to 16
        _section(rng, np.arange(40, 51), u),  # 4-bit
        _section(rng, rng.choice(65535, 200, replace=False), u),  # 8-bit
        rng.integers(0, 65536, (16, 16, 16)).astype(u),  # plain (noise)
        _section(rng, [1, 2], u),  # 4-bit again, after other modes
        np.zeros((16, 16, 16), u),  # uniform air
        _section(rng, np.arange(16), u),  # 4-bit, full palette
    ]
    return np.concatenate(sections)


def mixed_u32() -> npt.NDArray[np.uint32]:
    """uint32 ids near the top of the range, including a 16-bit palette section."""
    rng = np.random.default_rng(32)
    u = np.uint32
    top = np.iinfo(u).max
    sections = [
        np.full((16, 16, 16), top, u),  # uniform, largest id
        _section(rng, [0, top], u),  # 4-bit
        _section(rng, top - np.arange(13, dtype=u) * 70001, u),  # 4-bit
        _section(rng, rng.choice(2**32, 1000, replace=False), u),  # 16-bit palette
        rng.integers(0, 2**32, (16, 16, 16), dtype=u),  # plain
        _section(rng, 2**31 + np.arange(100, dtype=u), u),  # 8-bit
    ]
    return np.concatenate(sections)


def arrays() -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(2024)
    return {
        "terrain": generate_chunk(0, 0, seed=1),
        "air": np.zeros((384, 16, 16), np.uint16),
        "noise_u16": rng.integers(0, 65536, (64, 16, 16)).astype(np.uint16),
        "big_ids_u32": generate_chunk(-3, 7, seed=2, height=128, min_y=0).astype(np.uint32)
        * np.uint32(65_537)
        + np.uint32(1_000_000),
        "terrain_h256": generate_chunk(5, -2, seed=3, height=256, min_y=0),
        "single_section": _section(rng, [0, 1, 2, 3, 4], np.uint16),
        "mixed_u16": mixed_u16(),
        "mixed_u32": mixed_u32(),
    }


# Other compressions: (compression, level) per array, written as NAME@METHOD.bin.
VARIANTS: dict[str, list[tuple[str, int | None]]] = {
    "terrain": [("zstd", None), ("zstd", 19), ("none", None), ("lz4", 9)],
    "terrain_h256": [("zstd", None)],
    "big_ids_u32": [("zstd", None)],
    "mixed_u16": [("zstd", None)],
    "mixed_u32": [("zstd", 1)],
    "noise_u16": [("zstd", None)],  # zstd does not pay on noise: written uncompressed
    "air": [("zstd", None)],
}


def method_name(compression: str, level: int | None) -> str:
    return compression if level is None else f"{compression}-{level}"


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays().items():
        np.save(GOLDEN / f"{name}.npy", arr, allow_pickle=False)
        data = encode_chunk(arr)
        (GOLDEN / f"{name}.bin").write_bytes(data)
        print(f"{name}: {arr.dtype} {arr.shape} -> {len(data)} bytes")
        for compression, level in VARIANTS.get(name, []):
            data = encode_chunk(arr, compression=compression, level=level)
            method = method_name(compression, level)
            (GOLDEN / f"{name}@{method}.bin").write_bytes(data)
            print(f"{name}@{method}: {len(data)} bytes, format version {data[4]}")
    (GOLDEN / "ZSTD_VERSION").write_text(".".join(map(str, zstandard.ZSTD_VERSION)) + "\n")


if __name__ == "__main__":
    main()
