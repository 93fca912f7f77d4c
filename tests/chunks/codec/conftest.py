"""Fixtures shared by the codec tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voxeldb.chunks.codec import encode_chunk
from voxeldb.terrain import generate_chunk


@pytest.fixture(scope="module")
def terrain() -> npt.NDArray[np.uint16]:
    return generate_chunk(2, -3, seed=7)


@pytest.fixture(scope="module")
def terrain_bytes(terrain: npt.NDArray[np.uint16]) -> bytes:
    return encode_chunk(terrain)
