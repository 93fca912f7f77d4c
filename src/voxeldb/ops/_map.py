"""``voxeldb map``: a top-down picture of a world, one pixel per block column.

The map reads **chunk summaries** (``ChunkStore.summaries``: the top and the under block of
every column, stored beside each chunk when it is written), a strip of chunk rows at a time:
about 300 bytes a chunk instead of the whole chunk. Chunks whose summary is missing or stale
(written before summaries existed, or by the ORM or a snapshot restore) are decoded instead;
``rebuild_summaries=True`` stores what was computed for them.

Colours come from the built-in tables for ``minecraft:*`` and Luanti's blocks, or a
minetestmapper ``colors.txt`` (``_map_colors``). A translucent top block (water, ice,
glass: alpha below 255) is blended over the block under it, more opaque the deeper it is.
Brightness follows height, with hill shading from the slope towards north. North is at the
top: the world's ``"north"`` setting says where it is (``"-z"``, Minecraft's and the default
for worlds voxeldb generated, or ``"+z"``, Luanti's). A legend strip (``_map_legend``) gives
north, the corner coordinates and a scale.
"""

from __future__ import annotations

import collections
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from voxeldb.errors import ValidationError
from voxeldb.ops._map_colors import (
    Color,
    Palette,
    builtin_colors,
    fallback_color,
    read_colors,
    resolve_color,
)
from voxeldb.ops._map_pixels import column_colours, shade

if TYPE_CHECKING:
    from voxeldb import Database
    from voxeldb._summary import Summaries
    from voxeldb.services import WorldRef

__all__ = [
    "BACKGROUND",
    "BLOCK_COLORS",
    "DEFAULT_NORTH",
    "VOID",
    "MapInfo",
    "color_for",
    "draw_map",
    "map_frame",
    "map_frame_from",
    "render_map",
    "stored_bounds",
    "top_blocks",
]

BACKGROUND = (40, 40, 46)
"""Where no chunk is stored."""
VOID = (8, 8, 12)
"""A stored column that is all air."""
DEFAULT_NORTH = "-z"
"""North of a world whose settings do not say (voxeldb's own worlds): -z, as in Minecraft."""
NORTHS = ("-z", "+z")
MAX_RADIUS = 512
"""The largest map is ``2 * MAX_RADIUS + 1`` chunks a side."""
DEFAULT_RADIUS = 16
"""The radius around an explicit centre when none is given."""
_STRIP_CHUNKS = 4096
"""Chunk summaries read per query (~1.2 MiB stored, 12 MiB decoded)."""
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


class _BlockColors(Mapping[str, tuple[int, int, int]]):
    """The built-in tables as ``name -> (r, g, b)``, read when first used."""

    def __getitem__(self, name: str) -> tuple[int, int, int]:
        return builtin_colors()[name][:3]

    def __iter__(self) -> Iterator[str]:
        return iter(builtin_colors())

    def __len__(self) -> int:
        return len(builtin_colors())


BLOCK_COLORS: Mapping[str, tuple[int, int, int]] = _BlockColors()
"""The built-in colour of every block name the tables know (``_map_colors``)."""


def color_for(state: Mapping[str, Any]) -> tuple[int, int, int]:
    """The map colour of a block state: the built-in tables', else a stable colour from its
    type name."""
    kind = str(state.get("type", ""))
    colour = resolve_color(kind)
    return colour[:3] if colour is not None else fallback_color(kind)


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
    north: str = DEFAULT_NORTH
    unknown_columns: int = 0
    """Columns whose top block no colour table knew (drawn in a fallback colour)."""
    unknown_names: tuple[str, ...] = field(default=())
    """Those block names, the most common first."""
    decoded_chunks: int = 0
    """Chunks without a current summary (decoded instead)."""
    rebuilt_chunks: int = 0
    """Of those, the chunks whose summary was stored (``rebuild_summaries=True``)."""


class MapSource(Protocol):
    """Where a map's data comes from: the store (:func:`render_map`) or, for the command,
    the SQLite file read directly (``_map_sqlite``)."""

    def registry(self) -> dict[int, dict[str, Any]]: ...

    def bounds(self) -> tuple[int, int, int, int] | None: ...

    def summaries(
        self, rect: tuple[int, int, int, int], rebuild: bool
    ) -> tuple[list[tuple[int, int]], Summaries, int, int]:
        """``(keys, summaries, decoded, rebuilt)`` of the stored chunks of ``rect``."""
        ...


class _StoreSource:
    def __init__(self, db: Database, world: WorldRef) -> None:
        self._db, self._world = db, world
        self._store = db.chunks(world.id)

    def registry(self) -> dict[int, dict[str, Any]]:
        return _registry(self._db, self._world)

    def bounds(self) -> tuple[int, int, int, int] | None:
        return stored_bounds(self._db, self._world)

    def summaries(
        self, rect: tuple[int, int, int, int], rebuild: bool
    ) -> tuple[list[tuple[int, int]], Summaries, int, int]:
        read = self._store.summaries(*rect, rebuild=rebuild)
        return read.keys, read.summaries, read.decoded, read.rebuilt


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
    colors: str | os.PathLike[str] | Mapping[str, Color] | None = None,
    legend: bool = True,
    north: str | None = None,
    rebuild_summaries: bool = False,
) -> MapInfo:
    """Draw chunks of ``world`` into the image ``path`` (:func:`draw_map` from its store)."""
    return draw_map(
        _StoreSource(db, world),
        world,
        path,
        center=center,
        radius=radius,
        grid=grid,
        progress=progress,
        frame=frame,
        colors=colors,
        legend=legend,
        north=north,
        rebuild_summaries=rebuild_summaries,
    )


class MapWorld(Protocol):
    """What a map needs of a world (``voxeldb.services.WorldRef`` has it)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> dict[str, Any]: ...


def draw_map(
    source: MapSource,
    world: MapWorld,
    path: str | os.PathLike[str],
    *,
    center: tuple[int, int] | None = None,
    radius: int | None = None,
    grid: bool = False,
    progress: Callable[[int], None] | None = None,
    frame: tuple[int, int, int, int] | None = None,
    colors: str | os.PathLike[str] | Mapping[str, Color] | None = None,
    legend: bool = True,
    north: str | None = None,
    rebuild_summaries: bool = False,
) -> MapInfo:
    """Draw chunks of ``world`` from ``source`` into the image ``path``.

    The extension names the format (``IMAGE_FORMATS``: ``.png``, ``.jpg``, ``.webp``, ...;
    any other is refused). A directory (existing, or written with a trailing separator) gets
    ``<world name>.png`` inside it.

    Without ``center`` and ``radius`` the frame is the bounding box of the world's stored
    chunks (at most ``2 * MAX_RADIUS + 1`` chunks a side, around the box's middle); otherwise
    it is the square ``radius`` (default 16) around ``center`` (default: the box's middle).
    ``frame`` is :func:`map_frame`'s answer when the caller already has it. ``colors`` is a
    ``colors.txt`` file (or its parsed table) whose entries win over the built-in ones;
    ``north`` overrides the world's ``"north"`` setting; ``legend=False`` omits the strip.
    """
    from PIL import Image, ImageDraw

    if radius is not None and (
        isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS
    ):
        raise ValidationError(
            f"radius must be from 0 to {MAX_RADIUS} chunks, got {radius!r}", field="radius"
        )
    north = _north(world, north)
    extra = read_colors(colors) if isinstance(colors, str | os.PathLike) else colors
    target, image_format = _output(path, world.name)
    cx0, cz0, nx, nz = frame if frame is not None else _frame(source.bounds, center, radius)
    width, depth_px = nx * 16, nz * 16
    rgb = np.empty((depth_px, width, 3), dtype=np.uint8)
    rgb[:] = BACKGROUND
    heights = np.full((depth_px, width), -2, dtype=np.int16)  # -2: no chunk, -1: all air
    # [chunk row, z, chunk column, x]: a chunk's 16 x 16 pixels by fancy indexing.
    rgb_view = rgb.reshape(nz, 16, nx, 16, 3)
    height_view = heights.reshape(nz, 16, nx, 16)

    palette = Palette(source.registry(), extra)
    unknown: collections.Counter[int] = collections.Counter()
    present = decoded = rebuilt = 0
    rows_per_strip = max(1, _STRIP_CHUNKS // nx)
    for row0 in range(0, nz, rows_per_strip):
        row1 = min(nz, row0 + rows_per_strip) - 1
        rect = (cx0, cz0 + row0, cx0 + nx - 1, cz0 + row1)
        found, summaries, n_decoded, n_rebuilt = source.summaries(rect, rebuild_summaries)
        decoded += n_decoded
        rebuilt += n_rebuilt
        if found:
            keys = np.asarray(found, dtype=np.int64)
            zi, xi = keys[:, 1] - cz0, keys[:, 0] - cx0
            colours, top_y = column_colours(summaries, palette, unknown, VOID)
            rgb_view[zi, :, xi] = colours
            height_view[zi, :, xi] = top_y
            present += len(found)
        if progress is not None:
            progress((row1 - row0 + 1) * nx)

    if north == "+z":  # +z at the top: the picture's rows run from the largest z down
        rgb, heights = rgb[::-1], heights[::-1]
    shade(rgb, heights)
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if grid:
        draw = ImageDraw.Draw(image)
        for k in range(1, nx):
            draw.line([(k * 16, 0), (k * 16, depth_px - 1)], fill=(0, 0, 0))
        for k in range(1, nz):
            draw.line([(0, k * 16), (width - 1, k * 16)], fill=(0, 0, 0))
    if legend:
        from voxeldb.ops._map_legend import add_legend

        z_first, z_last = cz0 * 16, (cz0 + nz) * 16 - 1
        z_top, z_bottom = (z_last, z_first) if north == "+z" else (z_first, z_last)
        image = add_legend(
            image,
            title=world.name,
            north=north,
            top_left=(cx0 * 16, z_top),
            bottom_right=((cx0 + nx) * 16 - 1, z_bottom),
            background=BACKGROUND,
        )
    if image_format == "PNG":
        from voxeldb.ops._map_png import write_png

        write_png(target, np.asarray(image))
    else:
        options: dict[str, Any] = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
        image.save(target, format=image_format, **options)
    names = tuple(palette.names[i] for i, _ in unknown.most_common())
    return MapInfo(
        target,
        image.width,
        image.height,
        present,
        nx * nz,
        north=north,
        unknown_columns=sum(unknown.values()),
        unknown_names=names,
        decoded_chunks=decoded,
        rebuilt_chunks=rebuilt,
    )


def _north(world: MapWorld, north: str | None) -> str:
    value = north if north is not None else world.settings.get("north", DEFAULT_NORTH)
    if value not in NORTHS:
        raise ValidationError(
            f"north must be one of {', '.join(NORTHS)}, got {value!r}", field="north"
        )
    return str(value)


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
    return _frame(lambda: stored_bounds(db, world), center, radius)


def map_frame_from(
    bounds_of: Callable[[], tuple[int, int, int, int] | None],
    center: tuple[int, int] | None = None,
    radius: int | None = None,
) -> tuple[int, int, int, int]:
    """:func:`map_frame` given a function that returns the stored chunks' bounds."""
    return _frame(bounds_of, center, radius)


def _frame(
    bounds_of: Callable[[], tuple[int, int, int, int] | None],
    center: tuple[int, int] | None,
    radius: int | None,
) -> tuple[int, int, int, int]:
    if center is not None and radius is None:
        radius = DEFAULT_RADIUS
    if center is not None and radius is not None:
        return center[0] - radius, center[1] - radius, 2 * radius + 1, 2 * radius + 1
    bounds = bounds_of()
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
