"""The pixels of a map: each column's colour from its summary, then shading by height.

Split from ``_map`` (which reads the summaries and writes the picture). Both steps run over
every column of the picture (25 million for a map of 10^5 chunks), so they work on whole
arrays, and per distinct value where a value has few (the palette, the heights).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from voxeldb._summary import Summaries
    from voxeldb.ops._map_colors import Palette

__all__ = ["column_colours", "shade"]

_SHADE_ROWS = 1024
"""Pixel rows shaded at a time (bounds the float temporaries)."""


def column_colours(
    summaries: Summaries,
    palette: Palette,
    unknown: collections.Counter[int],
    void: tuple[int, int, int],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int16]]:
    """The unshaded colour ``(n, 16, 16, 3)`` and top height of every column of a strip.

    A translucent top is blended over the under block's colour: ``k`` blocks of alpha ``a``
    hide ``1 - (1 - a)^k`` of it (``k`` = top y - under y).
    """
    palette.cover((summaries.top_id, summaries.under_id))
    shape = summaries.top_id.shape
    # Flat and as intp: take() with native indices is several times faster than fancy indexing.
    top = summaries.top_id.reshape(-1).astype(np.intp)
    top_y, under_y = summaries.top_y.reshape(-1), summaries.under_y.reshape(-1)
    counts = np.bincount(top, minlength=len(palette.names))
    ids = np.flatnonzero(palette.unknown & (counts > 0))
    unknown.update(dict(zip(ids.tolist(), counts[ids].tolist(), strict=True)))
    # Opaque tops are a lookup; only translucent ones (water, mostly) need the float blend.
    colour = palette.rgb.astype(np.uint8).take(top, axis=0)
    blend = np.flatnonzero((palette.alpha < 1.0).take(top) & (under_y >= 0))
    if blend.size:
        over = top.take(blend)
        under = summaries.under_id.reshape(-1).take(blend).astype(np.intp)
        depth = np.maximum(top_y.take(blend).astype(np.float32) - under_y.take(blend), 1.0)
        cover = (1.0 - (1.0 - palette.alpha.take(over)) ** depth)[:, None]
        mixed = palette.rgb.take(over, axis=0) * cover + palette.rgb.take(under, axis=0) * (
            1.0 - cover
        )
        colour[blend] = np.clip(mixed, 0, 255).astype(np.uint8)
    colour[top_y < 0] = void
    return colour.reshape(*shape, 3), summaries.top_y


def shade(rgb: npt.NDArray[np.uint8], heights: npt.NDArray[np.int16]) -> None:
    """Brighter with height, hill shading from the slope towards the top (north), in place."""
    solid = heights >= 0
    if not solid.any():
        return
    counts = np.bincount(heights[solid].astype(np.int64))
    cumulative = np.cumsum(counts) / counts.sum()
    lo = float(np.searchsorted(cumulative, 0.02))
    hi = float(np.searchsorted(cumulative, 0.98))
    if hi <= lo:  # flat: the middle brightness
        lo, hi = lo - 1.0, lo + 1.0
    span = hi - lo
    # Both factors take few values (one per height, seven slopes): computed once per value,
    # with the same float32 operations a per-pixel formula would do.
    levels = np.arange(len(counts), dtype=np.float32)
    brightness = 0.65 + 0.5 * np.clip((levels - lo) / span, 0.0, 1.0)
    slope = 1.0 + np.arange(-3, 4, dtype=np.float32) * 0.06
    for start in range(0, len(heights), _SHADE_ROWS):
        stop = min(len(heights), start + _SHADE_ROWS)
        h = heights[start:stop]
        # The row above each row (the first row is its own): the neighbour towards north.
        north = heights[max(start - 1, 0) : stop - 1]
        if start == 0:
            north = np.vstack([h[:1], north])
        solid = h >= 0
        rise = np.where(solid & (north >= 0), np.clip(h - north, -3, 3), 0)
        shade = brightness.take(np.maximum(h, 0)) * slope.take(rise + 3)
        shade[~solid] = 1.0  # no chunk, or all air: as drawn
        band = rgb[start:stop]
        shaded = band * shade[..., None]
        band[...] = np.minimum(shaded, 255.0, out=shaded)  # never below 0: shade > 0.5
