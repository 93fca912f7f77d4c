"""World geometry: default shape, coordinate checks, and the key and rectangle types.

A chunk is a column of 16 x 16 blocks, ``height`` blocks tall starting at ``min_y``; block
``(x, y, z)`` lives in chunk ``(x >> 4, z >> 4)`` at local ``(x & 15, y - min_y, z & 15)``.
Chunk coordinates are stored as 32-bit integers.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb.errors import ChunkFormatError, CoordinateError, ValidationError

__all__ = [
    "DEFAULT_HEIGHT",
    "DEFAULT_MIN_Y",
    "INT32_MAX",
    "INT32_MIN",
    "Blocks",
    "Key",
    "Rect",
    "Row",
    "VersionRow",
    "as_coord",
    "block_coords",
    "check_blocks",
    "check_shape",
    "check_square",
    "chunk_coord",
    "local_y",
    "world_compression",
    "world_shape",
]

DEFAULT_HEIGHT = 384
DEFAULT_MIN_Y = -64
MAX_WORLD_HEIGHT = 4096

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

Blocks = npt.NDArray[Any]
"""A chunk in memory: ``(height, 16, 16)`` indexed ``[y, z, x]``, uint16 or uint32."""
Key = tuple[int, int]
"""``(cx, cz)``."""
Rect = tuple[int, int, int, int]
"""``(cx0, cz0, cx1, cz1)``, inclusive."""
VersionRow = tuple[int, int, int]
"""``(cx, cz, version)``."""
Row = tuple[int, int, int, bytes]
"""``(cx, cz, version, data)`` as a backend returns it."""


def world_compression(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """How a world's chunks are written, from its settings: ``compression`` (default
    ``"lz4"``) and ``compression_level`` (default None), as :class:`ChunkStore` keywords.
    Unchecked here: the store (and ``create_world``) refuse what ``encode_chunk`` would."""
    settings = settings or {}
    return {
        "compression": settings.get("compression", "lz4"),
        "compression_level": settings.get("compression_level"),
    }


def world_shape(settings: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(height, min_y)`` of a world from its settings (defaults 384 and -64)."""
    settings = settings or {}
    return int(settings.get("height", DEFAULT_HEIGHT)), int(settings.get("min_y", DEFAULT_MIN_Y))


def check_shape(height: object, min_y: object) -> tuple[int, int]:
    """``(height, min_y)`` if they make a world (height a positive multiple of 16, at most
    4096), else a ValidationError naming the field."""
    if (
        isinstance(height, bool)
        or not isinstance(height, int)
        or height <= 0
        or height % 16
        or height > MAX_WORLD_HEIGHT
    ):
        raise ValidationError(
            f"world height must be a positive multiple of 16 (at most {MAX_WORLD_HEIGHT}), "
            f"got {height!r}",
            field="height",
        )
    if isinstance(min_y, bool) or not isinstance(min_y, int):
        raise ValidationError(f"world min_y must be an integer, got {min_y!r}", field="min_y")
    return height, min_y


def as_coord(value: object, name: str) -> int:
    """``value`` as a Python int; floats, bools, strings and the like are refused."""
    if isinstance(value, bool | float) or not hasattr(value, "__index__"):
        raise CoordinateError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200]
        )
    return operator.index(value)


def local_y(y: object, height: int, min_y: int) -> int:
    """Row of world ``y`` in a chunk array; outside the world a CoordinateError with the range."""
    yi = as_coord(y, "y")
    if not min_y <= yi < min_y + height:
        raise CoordinateError(
            f"y = {yi} is outside the world: valid range {min_y}..{min_y + height - 1}, "
            f"i.e. [{min_y}, {min_y + height}) (min_y = {min_y}, height = {height})"
        )
    return yi - min_y


def chunk_coord(value: object, name: str) -> int:
    """A chunk coordinate: an integer in the 32-bit range."""
    result = as_coord(value, name)
    if not INT32_MIN <= result <= INT32_MAX:
        raise CoordinateError(
            f"{name} = {result} is outside the chunk coordinate range [{INT32_MIN}, {INT32_MAX}]"
        )
    return result


def block_coords(
    x: object, y: object, z: object, height: int, min_y: int
) -> tuple[int, int, int, int, int]:
    """``(cx, cz, lx, ly, lz)`` of block ``(x, y, z)``."""
    xi, zi = as_coord(x, "x"), as_coord(z, "z")
    ly = local_y(y, height, min_y)
    cx, cz = xi >> 4, zi >> 4
    if not (INT32_MIN <= cx <= INT32_MAX and INT32_MIN <= cz <= INT32_MAX):
        raise CoordinateError(
            f"block ({xi}, {y}, {zi}) is outside the world's chunk range "
            f"(chunk coordinates must lie in [{INT32_MIN}, {INT32_MAX}])"
        )
    return cx, cz, xi & 15, ly, zi & 15


def check_square(cx: object, cz: object, radius: object) -> tuple[int, int, int]:
    """``(cx, cz, radius)`` of a square that stays inside the chunk coordinate range."""
    cxi, czi = chunk_coord(cx, "cx"), chunk_coord(cz, "cz")
    r = as_coord(radius, "radius")
    if r < 0:
        raise CoordinateError(f"radius must be >= 0, got {r}")
    if not (
        INT32_MIN <= cxi - r
        and cxi + r <= INT32_MAX
        and INT32_MIN <= czi - r
        and czi + r <= INT32_MAX
    ):
        raise CoordinateError(
            f"the square of radius {r} around ({cxi}, {czi}) leaves the chunk "
            f"coordinate range [{INT32_MIN}, {INT32_MAX}]"
        )
    return cxi, czi, r


def check_blocks(blocks: object, shape: tuple[int, int, int], where: str) -> Blocks:
    """``blocks`` if it is a chunk of ``shape`` (uint16 or uint32), else a ChunkFormatError."""
    if not isinstance(blocks, np.ndarray):
        raise ChunkFormatError(
            f"{where}: blocks must be a numpy array of shape {shape}, got {type(blocks).__name__}"
        )
    if blocks.dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise ChunkFormatError(
            f"{where}: blocks must have dtype uint16 or uint32, got {blocks.dtype}"
        )
    if blocks.shape != shape:
        raise ChunkFormatError(
            f"{where}: blocks must have shape (height, 16, 16) = {shape} for this "
            f"world (height {shape[0]}), got {blocks.shape}"
        )
    return blocks
