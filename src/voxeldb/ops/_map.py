"""``voxeldb map``: a top-down picture of a world, one pixel per block column.

Chunks are read with ``ChunkStore.region`` a strip of chunk rows at a time (one query per
batch, bounded memory). Per strip, the top non-air block of every column is found at once:
``argmax`` over the reversed y axis of the stacked ``(n, height, 16, 16)`` array. Colours
come from a table keyed by the block state's ``type``; brightness follows height, with a
little hill shading from the slope towards the north. Absent chunks are a neutral background.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from voxeldb.errors import ValidationError

if TYPE_CHECKING:
    from voxeldb import Database
    from voxeldb.services import WorldRef

__all__ = [
    "BACKGROUND",
    "BLOCK_COLORS",
    "LIQUIDS",
    "MapInfo",
    "color_for",
    "map_frame",
    "render_map",
    "stored_bounds",
    "top_blocks",
]

BACKGROUND = (40, 40, 46)
"""Where no chunk is stored."""
VOID = (8, 8, 12)
"""A stored column that is all air."""
LIQUIDS = frozenset({"water", "lava"})
"""Block types drawn by depth rather than height."""
MAX_RADIUS = 512
"""The largest map is ``2 * MAX_RADIUS + 1`` chunks a side."""
DEFAULT_RADIUS = 16
"""The radius around an explicit centre when none is given."""
_STRIP_CHUNKS = 64
IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
"""The file name's extension picks the image format (Pillow's name for it)."""
"""Chunks decoded per batch: 64 chunks of 384 blocks are ~12 MiB as uint16."""

BLOCK_COLORS: dict[str, tuple[int, int, int]] = {
    "grass_block": (95, 159, 53),
    "grass": (95, 159, 53),
    "dirt": (134, 96, 67),
    "coarse_dirt": (119, 85, 59),
    "podzol": (106, 76, 44),
    "mycelium": (111, 99, 105),
    "farmland": (110, 74, 45),
    "stone": (125, 125, 125),
    "cobblestone": (110, 110, 110),
    "deepslate": (80, 80, 84),
    "bedrock": (50, 50, 50),
    "gravel": (131, 127, 126),
    "sand": (219, 207, 163),
    "red_sand": (190, 102, 33),
    "sandstone": (216, 203, 155),
    "clay": (160, 166, 179),
    "water": (52, 92, 196),
    "lava": (207, 92, 15),
    "ice": (145, 183, 253),
    "packed_ice": (141, 180, 250),
    "snow": (248, 254, 254),
    "snow_block": (248, 254, 254),
    "oak_log": (109, 85, 50),
    "spruce_log": (58, 37, 16),
    "birch_log": (216, 215, 210),
    "oak_leaves": (59, 122, 32),
    "spruce_leaves": (47, 82, 47),
    "birch_leaves": (96, 139, 64),
    "oak_planks": (162, 130, 78),
    "glass": (200, 220, 230),
    "obsidian": (20, 18, 30),
    "coal_ore": (105, 105, 105),
    "iron_ore": (136, 129, 122),
    "copper_ore": (124, 125, 120),
    "gold_ore": (143, 140, 125),
    "redstone_ore": (133, 107, 107),
    "diamond_ore": (121, 141, 140),
    "emerald_ore": (117, 136, 124),
    "deepslate_iron_ore": (106, 99, 94),
    "deepslate_gold_ore": (115, 102, 78),
    "deepslate_diamond_ore": (83, 106, 106),
}


def color_for(state: dict[str, Any]) -> tuple[int, int, int]:
    """The map colour of a block state: the table's, else a stable colour from its type name."""
    kind = str(state.get("type", ""))
    if kind in BLOCK_COLORS:
        return BLOCK_COLORS[kind]
    for suffix, colour in (("_leaves", (59, 122, 32)), ("_log", (109, 85, 50)),
                           ("_planks", (162, 130, 78)), ("_ore", (125, 125, 125)),
                           ("_wool", (220, 220, 220)), ("_glass", (200, 220, 230))):  # fmt: skip
        if kind.endswith(suffix):
            return colour
    digest = hashlib.blake2b(kind.encode(), digest_size=3).digest()
    return (64 + digest[0] // 2, 64 + digest[1] // 2, 64 + digest[2] // 2)


def top_blocks(
    stack: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint32]]:
    """For ``(n, height, 16, 16)`` chunks: the y index and state id of each column's top block.

    An all-air column has y index -1 and id 0.
    """
    height = stack.shape[1]
    solid_from_top = stack[:, ::-1] != 0
    first = solid_from_top.argmax(axis=1)  # (n, 16, 16): 0 also when the column is all air
    has = np.take_along_axis(solid_from_top, first[:, None], axis=1)[:, 0]
    y_index = (height - 1 - first).astype(np.int32)
    ids = np.take_along_axis(stack, y_index[:, None].astype(np.intp), axis=1)[:, 0]
    y_index = np.where(has, y_index, -1).astype(np.int32)
    return y_index, np.where(has, ids, 0).astype(np.uint32)


@dataclass(frozen=True)
class MapInfo:
    path: Path
    width: int
    height: int
    chunks_present: int
    chunks_total: int


def render_map(
    db: Database,
    world: WorldRef,
    path: str | os.PathLike[str],
    *,
    center: tuple[int, int] | None = None,
    radius: int | None = None,
    grid: bool = False,
    progress: Callable[[int], None] | None = None,
    frame: tuple[int, int, int, int] | None = None,
) -> MapInfo:
    """Draw chunks of ``world`` into the image ``path``.

    The extension names the format (``IMAGE_FORMATS``: ``.png``, ``.jpg``, ``.webp``, ...;
    any other is refused). A directory (existing, or written with a trailing separator) gets
    ``<world name>.png`` inside it.

    Without ``center`` and ``radius`` the frame is the bounding box of the world's stored
    chunks (at most ``2 * MAX_RADIUS + 1`` chunks a side, around the box's middle); otherwise
    it is the square ``radius`` (default 16) around ``center`` (default: the box's middle).
    ``frame`` is :func:`map_frame`'s answer when the caller already has it.
    """
    from PIL import Image, ImageDraw

    if radius is not None and (
        isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS
    ):
        raise ValidationError(
            f"radius must be from 0 to {MAX_RADIUS} chunks, got {radius!r}", field="radius"
        )
    target, image_format = _output(path, world.name)
    cx0, cz0, nx, nz = frame if frame is not None else _frame(db, world, center, radius)
    width, depth_px = nx * 16, nz * 16
    heights = np.full((depth_px, width), -1, dtype=np.int32)
    ids = np.zeros((depth_px, width), dtype=np.uint32)
    depths = np.zeros((depth_px, width), dtype=np.int32)
    present = np.zeros((nz, nx), dtype=bool)

    registry = _registry(db, world)
    liquids = np.array(
        sorted(i for i, st in registry.items() if st.get("type") in LIQUIDS), dtype=np.uint32
    )
    store = db.chunks(world.id)
    rows_per_strip = max(1, _STRIP_CHUNKS // nx)
    for row0 in range(0, nz, rows_per_strip):
        row1 = min(nz, row0 + rows_per_strip) - 1
        found = store.region(cx0, cz0 + row0, cx0 + nx - 1, cz0 + row1)
        if found:
            keys = list(found)
            dtype = np.result_type(*(found[k].dtype for k in keys))
            stack = np.stack([found[k] for k in keys]).astype(dtype, copy=False)
            y_index, top = top_blocks(stack)
            depth = _liquid_depth(stack, y_index, top, liquids)
            for i, (cx, cz) in enumerate(keys):
                px, pz = (cx - cx0) * 16, (cz - cz0) * 16
                heights[pz : pz + 16, px : px + 16] = y_index[i]
                ids[pz : pz + 16, px : px + 16] = top[i]
                depths[pz : pz + 16, px : px + 16] = depth[i]
                present[cz - cz0, cx - cx0] = True
        if progress is not None:
            progress((row1 - row0 + 1) * nx)

    rgb = _colorize(registry, heights, ids, depths, present)
    image = Image.fromarray(rgb, "RGB")
    if grid:
        draw = ImageDraw.Draw(image)
        for k in range(1, nx):
            draw.line([(k * 16, 0), (k * 16, depth_px - 1)], fill=(0, 0, 0))
        for k in range(1, nz):
            draw.line([(0, k * 16), (width - 1, k * 16)], fill=(0, 0, 0))
    options: dict[str, Any] = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    image.save(target, format=image_format, **options)
    return MapInfo(target, width, depth_px, int(present.sum()), nx * nz)


def _output(path: str | os.PathLike[str], world_name: str) -> tuple[Path, str]:
    """The file to write and its format; a directory gets ``<world name>.png``."""
    raw = os.fspath(path)
    target = Path(raw).expanduser()
    if raw.endswith(("/", os.sep)) or target.is_dir():
        if not target.is_dir():
            raise ValidationError(f"cannot write into {target}{os.sep}: the directory does not exist",
                                  field="output")  # fmt: skip
        stem = re.sub(r"[^\w.-]+", "_", world_name).lstrip(".") or "map"
        target = target / f"{stem}.png"
    image_format = IMAGE_FORMATS.get(target.suffix.lower())
    if image_format is None:
        names = ", ".join(IMAGE_FORMATS)
        raise ValidationError(
            f"cannot tell the image format of {target.name!r}: end the file name with one of "
            f"{names}",
            field="output",
        )
    if not target.parent.is_dir():
        raise ValidationError(f"cannot write {target}: directory {target.parent} does not exist",
                              field="output")  # fmt: skip
    return target, image_format


def stored_bounds(db: Database, world: WorldRef) -> tuple[int, int, int, int] | None:
    """``(min cx, min cz, max cx, max cz)`` of the world's stored chunks (one query), or None."""
    from sqlalchemy import func, select

    from voxeldb.chunks import world_chunks_table as chunks

    query = select(
        func.min(chunks.c.chunk_x),
        func.min(chunks.c.chunk_z),
        func.max(chunks.c.chunk_x),
        func.max(chunks.c.chunk_z),
    ).where(chunks.c.world_id == world.id)
    with db.engine.connect() as conn:
        row = conn.execute(query).one()
    if row[0] is None:
        return None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def map_frame(
    db: Database,
    world: WorldRef,
    center: tuple[int, int] | None = None,
    radius: int | None = None,
) -> tuple[int, int, int, int]:
    """The chunks :func:`render_map` draws: ``(first cx, first cz, chunks across, chunks down)``."""
    return _frame(db, world, center, radius)


def _frame(
    db: Database,
    world: WorldRef,
    center: tuple[int, int] | None,
    radius: int | None,
) -> tuple[int, int, int, int]:
    if center is not None and radius is None:
        radius = DEFAULT_RADIUS
    if center is not None and radius is not None:
        return center[0] - radius, center[1] - radius, 2 * radius + 1, 2 * radius + 1
    bounds = stored_bounds(db, world)
    if bounds is None:  # nothing stored: an empty square around the origin
        r = radius or 0
        return -r, -r, 2 * r + 1, 2 * r + 1
    x0, z0, x1, z1 = bounds
    if radius is not None:  # a radius without a centre: around the middle of what is stored
        mx, mz = (x0 + x1) // 2, (z0 + z1) // 2
        return mx - radius, mz - radius, 2 * radius + 1, 2 * radius + 1
    side = 2 * MAX_RADIUS + 1
    # A world wider than the largest picture: keep the middle of it.
    if x1 - x0 + 1 > side:
        x0 = (x0 + x1) // 2 - MAX_RADIUS
        x1 = x0 + side - 1
    if z1 - z0 + 1 > side:
        z0 = (z0 + z1) // 2 - MAX_RADIUS
        z1 = z0 + side - 1
    return x0, z0, x1 - x0 + 1, z1 - z0 + 1


def _registry(db: Database, world: WorldRef) -> dict[int, dict[str, Any]]:
    """The world's whole block-state registry (small: one row per distinct state)."""
    from sqlalchemy import select

    from voxeldb.chunks import block_states_table as bt

    with db.engine.connect() as conn:
        rows = conn.execute(select(bt.c.state_id, bt.c.state).where(bt.c.world_id == world.id))
        registry = {int(i): (json.loads(st) if isinstance(st, str) else dict(st)) for i, st in rows}
    registry[0] = {"type": "air"}
    return registry


def _liquid_depth(
    stack: npt.NDArray[Any],
    y_index: npt.NDArray[np.int32],
    top: npt.NDArray[np.uint32],
    liquids: npt.NDArray[np.uint32],
) -> npt.NDArray[np.int32]:
    """Blocks of liquid above the floor, for columns whose top block is a liquid; else 0."""
    if len(liquids) == 0:
        return np.zeros(top.shape, dtype=np.int32)
    wet = np.isin(top, liquids)
    if not wet.any():
        return np.zeros(top.shape, dtype=np.int32)
    height = stack.shape[1]
    floor_from_top = ((stack != 0) & ~np.isin(stack, liquids))[:, ::-1]
    first = floor_from_top.argmax(axis=1)
    has_floor = np.take_along_axis(floor_from_top, first[:, None], axis=1)[:, 0]
    floor_y = np.where(has_floor, height - 1 - first, -1)
    return np.where(wet, y_index - floor_y, 0).astype(np.int32)


def _colorize(
    registry: dict[int, dict[str, Any]],
    heights: npt.NDArray[np.int32],
    ids: npt.NDArray[np.uint32],
    depths: npt.NDArray[np.int32],
    present: npt.NDArray[np.bool_],
) -> npt.NDArray[np.uint8]:
    unique, inverse = np.unique(ids, return_inverse=True)
    palette = np.array(
        [
            # An id written without being registered is still drawn, in a colour of its own.
            color_for(registry.get(int(u), {"type": f"#unregistered-{int(u)}"}))
            for u in unique
        ],
        dtype=np.float32,
    )
    rgb = palette[inverse.reshape(ids.shape)]

    solid = heights >= 0
    if solid.any():
        lo, hi = np.percentile(heights[solid], [2, 98])
        span = max(float(hi - lo), 1.0)
        level = np.clip((heights - lo) / span, 0.0, 1.0)
        shade = 0.65 + 0.5 * level
        # Hill shading: lighter where the ground rises towards the north (light from the north).
        north = np.vstack([heights[:1], heights[:-1]])
        slope = np.where(solid & (north >= 0), heights - north, 0)
        shade *= 1.0 + np.clip(slope, -3, 3) * 0.06
        # Liquids are flat: their shade says how deep they are instead.
        wet = depths > 0
        shade = np.where(wet, 1.15 - 0.6 * np.clip(depths / 24.0, 0.0, 1.0), shade)
        rgb *= shade[..., None]
    rgb[~solid] = VOID
    block_present = np.kron(present, np.ones((16, 16), dtype=bool)).astype(bool)
    rgb[~block_present] = BACKGROUND
    return np.clip(rgb, 0, 255).astype(np.uint8)
