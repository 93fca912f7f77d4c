"""The legend strip under a map: where north is, the block coordinates of the corners, and a
scale bar (one pixel is one block column)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LEGEND_HEIGHT", "LEGEND_MIN_WIDTH", "add_legend"]

LEGEND_HEIGHT = 36
"""Pixels added under the map."""
LEGEND_MIN_WIDTH = 400
"""A narrower map is widened (with the background colour) so the legend fits."""
_INK = (235, 235, 235)
_PAPER = (24, 24, 28)
_SCALES = (10, 16, 20, 32, 50, 64, 100, 128, 200, 256, 500, 1000, 2000, 5000, 10000)


def add_legend(
    image: Image.Image,
    *,
    title: str,
    north: str,
    top_left: tuple[int, int],
    bottom_right: tuple[int, int],
    background: tuple[int, int, int],
) -> Image.Image:
    """``image`` with the legend strip under it (a new image)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = image.size
    canvas = Image.new("RGB", (max(width, LEGEND_MIN_WIDTH), height + LEGEND_HEIGHT), _PAPER)
    if width < canvas.width:
        canvas.paste(background, (width, 0, canvas.width, height))
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    y0 = height + 3
    draw.text((4, y0), f"{title}   north (up) is {north}", fill=_INK, font=font)
    # The scale bar: the largest round length that takes at most a third of the width.
    length = max((s for s in _SCALES if s <= canvas.width // 4), default=_SCALES[0])
    bar_y = height + 10
    x1 = canvas.width - 6
    x0 = x1 - length
    draw.line([(x0, bar_y), (x1, bar_y)], fill=_INK, width=3)
    draw.line([(x0, bar_y - 4), (x0, bar_y + 3)], fill=_INK)
    draw.line([(x1, bar_y - 4), (x1, bar_y + 3)], fill=_INK)
    label = f"{length} blocks"
    draw.text((x0 - 6 - draw.textlength(label, font=font), bar_y - 6), label, fill=_INK,
              font=font)  # fmt: skip
    corners = (
        f"top left x {top_left[0]}, z {top_left[1]}   "
        f"bottom right x {bottom_right[0]}, z {bottom_right[1]}"
    )
    draw.text((4, y0 + 16), corners, fill=_INK, font=font)
    return canvas
