"""Map colours: the built-in tables, ``colors.txt`` files, and a world's palette.

Tables are minetestmapper's ``colors.txt`` format, one block a line: ``name r g b [a [t]]``
(``#`` starts a comment; ``t`` is read and ignored). ``a`` below 255 marks a translucent
block (water, ice, glass): one block of it lets ``1 - a/255`` of what is under it show.

Built in (``voxeldb/data/``, package data): ``colors-minecraft.txt`` (vanilla
``minecraft:*`` blocks, ``scripts/make_minecraft_colors.py``) and ``colors-luanti.txt``
(minetest_game's ``default:*`` and the other mods it ships, averaged from their textures by
``scripts/make_luanti_colors.py``). A name without a namespace (the generated worlds'
``"stone"``) is also looked up as ``minecraft:<name>``. A name no table knows gets a stable
colour made from a hash of it, and is counted.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb.errors import ValidationError

__all__ = [
    "BUILTIN_TABLES",
    "Palette",
    "builtin_colors",
    "fallback_color",
    "parse_colors",
    "read_colors",
    "resolve_color",
]

Color = tuple[int, int, int, int]
"""``(r, g, b, alpha)``."""

BUILTIN_TABLES = ("colors-minecraft.txt", "colors-luanti.txt")
"""The files of ``voxeldb/data/`` read by :func:`builtin_colors`, in order (later wins)."""


def parse_colors(text: str, source: str = "<colors>") -> dict[str, Color]:
    """The entries of a ``colors.txt``; a malformed line is a ValidationError naming it."""
    table: dict[str, Color] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            if not 4 <= len(fields) <= 6:
                raise ValueError
            values = [int(v) for v in fields[1:]]
            if not all(0 <= v <= 255 for v in values[:4]):
                raise ValueError
        except ValueError:
            raise ValidationError(
                f"{source}, line {number}: expected 'name r g b [a [t]]' with values from 0 "
                f"to 255, got {line.strip()[:80]!r}",
                field="colors",
            ) from None
        r, g, b = values[:3]
        table[fields[0]] = (r, g, b, values[3] if len(values) > 3 else 255)
    return table


def read_colors(path: str | os.PathLike[str]) -> dict[str, Color]:
    """:func:`parse_colors` of a file; an unreadable file is a ValidationError."""
    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ValidationError(
            f"cannot read colours from {target}: {exc.strerror or exc}", field="colors"
        ) from None
    return parse_colors(text, str(target))


@functools.cache
def builtin_colors() -> Mapping[str, Color]:
    """Every built-in table, merged (read once per process from the installed package)."""
    # Beside the package on disk (always, installed or not); importlib.resources only for a
    # package that is not (a zip): importing it costs more than reading the tables.
    data: Any = Path(__file__).resolve().parent.parent / "data"
    if not data.is_dir():  # pragma: no cover - voxeldb imported from a zip
        from importlib import resources

        data = resources.files("voxeldb") / "data"
    table: dict[str, Color] = {}
    for name in BUILTIN_TABLES:
        table.update(parse_colors((data / name).read_text(encoding="utf-8"), name))
    return table


def fallback_color(kind: str) -> tuple[int, int, int]:
    """The stable colour of a name no table knows (a hash of it, mid-tones)."""
    try:  # hashlib's own blake2b, without hashlib loading OpenSSL (10 ms of a map)
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - not CPython
        from hashlib import blake2b

    digest = blake2b(kind.encode(), digest_size=3).digest()
    return (64 + digest[0] // 2, 64 + digest[1] // 2, 64 + digest[2] // 2)


def resolve_color(kind: str, extra: Mapping[str, Color] | None = None) -> Color | None:
    """The colour of block type ``kind`` from ``extra`` (a ``--colors`` file), then the
    built-in tables; None if none knows it."""
    builtin = builtin_colors()
    names = (kind,) if ":" in kind else (kind, f"minecraft:{kind}")
    for table in (extra or {}, builtin):
        for name in names:
            colour = table.get(name)
            if colour is not None:
                return colour
    return None


class Palette:
    """Colours of a world's block-state ids, as lookup arrays indexed by id.

    ``rgb[i]`` (float32), ``alpha[i]`` (0..1) and ``unknown[i]`` (no table knew its type).
    Ids met that the registry does not hold (written by other tools) are added on the way.
    """

    def __init__(
        self, registry: Mapping[int, Mapping[str, Any]], extra: Mapping[str, Color] | None = None
    ) -> None:
        self._registry = registry
        self._extra = extra
        self.names: list[str] = []
        self.rgb: npt.NDArray[np.float32] = np.zeros((0, 3), np.float32)
        self.alpha: npt.NDArray[np.float32] = np.zeros(0, np.float32)
        self.unknown: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self._grow(max(registry, default=0) + 1)

    def _grow(self, size: int) -> None:
        start = len(self.names)
        if size <= start:
            return
        rgb, alpha, unknown = [], [], []
        for i in range(start, size):
            state = self._registry.get(i)
            kind = "air" if i == 0 else str((state or {}).get("type", f"#unregistered-{i}"))
            colour = None if i == 0 else resolve_color(kind, self._extra)
            self.names.append(kind)
            unknown.append(colour is None and i != 0)
            if colour is None:
                colour = (*fallback_color(kind), 255)
            rgb.append(colour[:3])
            alpha.append(colour[3] / 255.0)
        self.rgb = np.concatenate([self.rgb, np.asarray(rgb, np.float32).reshape(-1, 3)])
        self.alpha = np.concatenate([self.alpha, np.asarray(alpha, np.float32)])
        self.unknown = np.concatenate([self.unknown, np.asarray(unknown, bool)])

    def cover(self, ids: Iterable[npt.NDArray[np.uint32]]) -> None:
        """Make sure every id in ``ids`` has an entry."""
        top = max((int(a.max()) for a in ids if a.size), default=0)
        self._grow(top + 1)
