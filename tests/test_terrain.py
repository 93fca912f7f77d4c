"""The terrain generator is deterministic, layered as documented and continuous across chunks."""

from __future__ import annotations

import numpy as np
import pytest

from voxeldb.terrain import SEA_LEVEL, TERRAIN_STATES, generate_chunk, terrain_chunks

ID = {name: i for i, name in enumerate(TERRAIN_STATES)}
MIN_Y = -64


def surface_heights(blocks: np.ndarray) -> np.ndarray:
    """World y of the highest block that is neither air nor water, per column [z, x]."""
    solid = (blocks != ID["air"]) & (blocks != ID["water"])
    return blocks.shape[0] - 1 - np.argmax(solid[::-1], axis=0) + MIN_Y


def test_deterministic_and_seed_dependent() -> None:
    a = generate_chunk(3, -5, seed=7)
    assert np.array_equal(a, generate_chunk(3, -5, seed=7))
    assert not np.array_equal(a, generate_chunk(3, -5, seed=8))
    assert a.shape == (384, 16, 16) and a.dtype == np.uint16
    assert int(a.max()) < len(TERRAIN_STATES)


def test_layers() -> None:
    a = generate_chunk(0, 0)
    assert (a[0] == ID["bedrock"]).all()
    assert (a[-1] == ID["air"]).all()
    deep = a[:-MIN_Y]  # world y < 0
    assert (deep == ID["deepslate"]).sum() > (deep == ID["stone"]).sum()
    water_y = np.nonzero(a == ID["water"])[0] + MIN_Y
    assert water_y.size == 0 or water_y.max() <= SEA_LEVEL
    assert (a == ID["dirt"]).any()


def test_ore_fraction_about_one_percent() -> None:
    chunks = [generate_chunk(cx, cz) for cx, cz, _ in terrain_chunks(0, 0, 1, 1)]
    blocks = np.stack(chunks)
    ore = np.isin(blocks, [i for name, i in ID.items() if name.endswith("_ore")]).sum()
    rock = np.isin(blocks, [ID["stone"], ID["deepslate"]]).sum() + ore
    assert 0.005 < ore / rock < 0.015


def test_continuous_across_chunk_borders() -> None:
    west, east = generate_chunk(0, 0), generate_chunk(1, 0)
    step_across = np.abs(surface_heights(west)[:, 15] - surface_heights(east)[:, 0])
    assert step_across.max() <= 6


def test_terrain_chunks_is_lazy_and_covers_rectangle() -> None:
    it = terrain_chunks(-1, -1, 1, 0, height=32, min_y=0)
    cx, cz, blocks = next(it)
    assert (cx, cz) == (-1, -1) and blocks.shape == (32, 16, 16)
    assert [(x, z) for x, z, _ in it] == [(0, -1), (1, -1), (-1, 0), (0, 0), (1, 0)]


@pytest.mark.parametrize("height", [0, -16, 20])
def test_bad_height(height: int) -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        generate_chunk(0, 0, height=height)
