"""A deterministic terrain generator: the sample data, ``voxeldb generate`` and the benchmarks.

Every value is a pure function of ``(seed, world x, y, z)``, so terrain is continuous across
chunk borders and identical in every process. Layers from the bottom: bedrock, deepslate
(below y = 0), stone with ~1% ores, 3–4 layers of dirt, grass (sand under water), water up
to sea level, air; caves carve through the stone.

The arrays hold indices into :data:`TERRAIN_STATES`; a world that stores them maps those to
its own block-state ids (interning ``TERRAIN_STATES`` in order into a new world gives the
identity mapping).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = [
    "SEA_LEVEL",
    "TERRAIN_STATES",
    "generate_chunk",
    "terrain_chunks",
]

TERRAIN_STATES: tuple[str, ...] = (
    "air",
    "bedrock",
    "stone",
    "deepslate",
    "dirt",
    "grass_block",
    "water",
    "sand",
    "gravel",
    "coal_ore",
    "iron_ore",
    "copper_ore",
    "gold_ore",
    "redstone_ore",
    "diamond_ore",
    "deepslate_iron_ore",
    "deepslate_gold_ore",
    "deepslate_diamond_ore",
)
_ID = {name: i for i, name in enumerate(TERRAIN_STATES)}

SEA_LEVEL = 62
_U64 = np.uint64


def _hash(seed: int, *coords: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """A uniform [0, 1) value per integer lattice point (splitmix64 over the coordinates)."""
    h = np.full(np.broadcast(*coords).shape, (seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF, _U64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(coords):
            h ^= c.astype(np.int64).view(_U64) * _U64(0xBF58476D1CE4E5B9 + 0x1000 * i)
            h ^= h >> _U64(31)
            h *= _U64(0x94D049BB133111EB)
            h ^= h >> _U64(29)
            h *= _U64(0xBF58476D1CE4E5B9)
            h ^= h >> _U64(32)
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _smooth(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return t * t * (3.0 - 2.0 * t)


def _value_noise_2d(
    seed: int, x: npt.NDArray[np.int64], z: npt.NDArray[np.int64], scale: int
) -> npt.NDArray[np.float64]:
    """Smooth value noise in [0, 1) on the (x, z) grid given by broadcastable arrays."""
    x0, z0 = x // scale, z // scale
    tx = _smooth((x - x0 * scale) / scale)
    tz = _smooth((z - z0 * scale) / scale)
    a = _hash(seed, x0, z0)
    b = _hash(seed, x0 + 1, z0)
    c = _hash(seed, x0, z0 + 1)
    d = _hash(seed, x0 + 1, z0 + 1)
    return (a * (1 - tx) + b * tx) * (1 - tz) + (c * (1 - tx) + d * tx) * tz


def _value_noise_3d(
    seed: int,
    ys: npt.NDArray[np.int64],
    zs: npt.NDArray[np.int64],
    xs: npt.NDArray[np.int64],
    scale: int,
) -> npt.NDArray[np.float64]:
    """Smooth value noise on the grid ``ys x zs x xs`` (1-D coordinate arrays), shape (y, z, x).

    Hashes only the lattice corners and interpolates one axis at a time, so the cost is a few
    array operations per block rather than eight hashes per block.
    """

    def axis(
        c: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        c0 = c // scale
        base = int(c0.min())
        lattice = np.arange(base, int(c0.max()) + 2, dtype=np.int64)
        return c0 - base, _smooth((c - c0 * scale) / scale), lattice

    iy, ty, ly = axis(ys)
    iz, tz, lz = axis(zs)
    ix, tx, lx = axis(xs)
    corners = _hash(seed, ly[:, None, None], lz[None, :, None], lx[None, None, :])
    along_x = corners[:, :, ix] * (1 - tx) + corners[:, :, ix + 1] * tx
    along_z = (
        along_x[:, iz, :] * (1 - tz)[None, :, None] + along_x[:, iz + 1, :] * tz[None, :, None]
    )
    return along_z[iy] * (1 - ty)[:, None, None] + along_z[iy + 1] * ty[:, None, None]


def generate_chunk(
    cx: int, cz: int, *, seed: int = 0, height: int = 384, min_y: int = -64
) -> npt.NDArray[np.uint16]:
    """The terrain of chunk ``(cx, cz)``: a ``(height, 16, 16)`` uint16 array indexed ``[y, z, x]``."""
    if height <= 0 or height % 16:
        raise ValueError(f"height must be a positive multiple of 16, got {height}")
    top = min_y + height
    xs = np.arange(16, dtype=np.int64) + cx * 16
    zs = np.arange(16, dtype=np.int64) + cz * 16
    ys = np.arange(min_y, top, dtype=np.int64)
    X, Z = xs[None, :], zs[:, None]  # (1, 16), (16, 1) -> columns indexed [z, x]

    # Surface height: three octaves of value noise, hills up to ~40 blocks around sea level.
    n = (
        0.6 * _value_noise_2d(seed, X, Z, 64)
        + 0.3 * _value_noise_2d(seed + 1, X, Z, 24)
        + 0.1 * _value_noise_2d(seed + 2, X, Z, 8)
    )
    sea = min(SEA_LEVEL, top - 2)
    surface = np.clip(np.round(sea - 14 + n * 44).astype(np.int64), min_y + 6, top - 2)
    # Per-block randomness (ores, dirt depth, ragged bedrock) needs no continuity across
    # borders, so a per-chunk generator seeded from (seed, cx, cz) is enough and much cheaper.
    chunk_key = _hash(seed + 3, np.array(cx, dtype=np.int64), np.array(cz, dtype=np.int64))
    rng = np.random.default_rng(int(chunk_key * (1 << 53)))
    dirt_depth = 3 + (rng.random((16, 16)) < 0.5)

    Y = ys[:, None, None]  # (height, 1, 1)
    S = surface[None, :, :]
    blocks = np.zeros((height, 16, 16), dtype=np.uint16)

    solid = Y <= S
    blocks[solid & (Y < 0)] = _ID["deepslate"]
    blocks[solid & (Y >= 0)] = _ID["stone"]
    dirt = solid & (Y > S - dirt_depth[None]) & (Y < S)
    blocks[dirt] = _ID["dirt"]
    underwater = surface < sea
    top_block = np.where(underwater, _ID["sand"], _ID["grass_block"]).astype(np.uint16)
    blocks[Y == S] = np.broadcast_to(top_block, (height, 16, 16))[Y == S]

    # Ores: ~1% of the stone and deepslate, richer kinds deeper down.
    stone_like = (blocks == _ID["stone"]) | (blocks == _ID["deepslate"])
    r = rng.random((height, 16, 16))
    ore = stone_like & (r < 0.01)
    if ore.any():
        kind = r[ore] / 0.01  # uniform in [0, 1) again
        deep = np.broadcast_to(Y < 0, (height, 16, 16))[ore]
        shallow_ids = np.array(
            [
                _ID["coal_ore"],
                _ID["iron_ore"],
                _ID["copper_ore"],
                _ID["gold_ore"],
                _ID["redstone_ore"],
                _ID["diamond_ore"],
            ],
            dtype=np.uint16,
        )
        deep_ids = np.array(
            [
                _ID["deepslate_iron_ore"],
                _ID["deepslate_iron_ore"],
                _ID["redstone_ore"],
                _ID["deepslate_gold_ore"],
                _ID["redstone_ore"],
                _ID["deepslate_diamond_ore"],
            ],
            dtype=np.uint16,
        )
        bins = np.array([0.40, 0.70, 0.85, 0.92, 0.97], dtype=np.float64)
        which = np.searchsorted(bins, kind, side="right")
        blocks[ore] = np.where(deep, deep_ids[which], shallow_ids[which])

    # Caves: a band of 3-D noise carves air below the dirt, never through the bedrock floor.
    cave = _value_noise_3d(seed + 5, ys, zs, xs, 16)
    carve = (np.abs(cave - 0.5) < 0.035) & (Y < S - 4) & (Y > min_y + 4)
    blocks[carve] = _ID["air"]

    # Gravel patches on the sea floor; water fills everything below sea level that is air.
    gravel = underwater & (_value_noise_2d(seed + 6, X, Z, 6) > 0.7)
    floor = (Y == S) & gravel[None]
    blocks[floor] = _ID["gravel"]
    water = (Y > S) & (Y <= sea)
    blocks[water] = _ID["water"]

    # Bedrock: a solid floor and a ragged layer above it.
    blocks[0] = _ID["bedrock"]
    ragged = rng.random((4, 16, 16)) < (np.arange(4, 0, -1) / 5.0)[:, None, None]
    blocks[1 : min(5, height)][ragged[: min(4, height - 1)]] = _ID["bedrock"]
    return blocks


def terrain_chunks(
    cx0: int,
    cz0: int,
    cx1: int,
    cz1: int,
    *,
    seed: int = 0,
    height: int = 384,
    min_y: int = -64,
) -> Iterator[tuple[int, int, npt.NDArray[np.uint16]]]:
    """Lazily yield ``(cx, cz, blocks)`` for every chunk of the inclusive rectangle, row by row."""
    for cz in range(min(cz0, cz1), max(cz0, cz1) + 1):
        for cx in range(min(cx0, cx1), max(cx0, cx1) + 1):
            yield cx, cz, generate_chunk(cx, cz, seed=seed, height=height, min_y=min_y)
