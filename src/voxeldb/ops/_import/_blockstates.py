"""A 1.18+ chunk's ``block_states``, every section at once: one column palette and one stack.

Each section has a palette of ``{Name, Properties}`` and, unless the palette has one entry,
4,096 indices packed into 64-bit longs (``max(4, ceil(log2(len(palette))))`` bits each,
never spanning two longs). Unpacked a section at a time, a chunk cost some 20 small numpy
calls per section and a dict lookup per palette entry and column, and the parent then
mapped every section again; here the sections of a chunk that share a bit width are
unpacked by one shift-and-mask (4-bit ones, most of a real world, as bytes), the column's
palette is the first-use order of every palette entry of the chunk (as the world's ids are
handed out in that order, a different order would number the states differently), and the
result is one ``(sections, 16, 16, 16)`` array of indices into it, uint8 when the column
has at most 256 states: what crosses from a parser process to the writer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb.ops._import._nbt import Entry, SectionTags
from voxeldb.ops._import._parsed import AIR_KEY, state_key

__all__ = ["AIR_NAMES", "chunk_sections", "section_indices"]

AIR_NAMES = frozenset({"minecraft:air"})
"""Block names that become voxeldb air. ``cave_air`` and ``void_air`` stay states of their own:
the game tells them apart (docs/importing.md)."""

_GIDS: dict[Entry, int] = {}
"""Palette entry -> a number of this process (0 is air), so a chunk's entries are numbered
by dict lookups and deduplicated by numpy. Palettes repeat from chunk to chunk."""
_KEYS: list[str] = [AIR_KEY]
"""Those numbers' state keys."""
_BY_KEY: dict[str, int] = {AIR_KEY: 0}
_LIMIT = 100_000
_NIBBLE = np.uint8(15)
_FOUR = np.uint8(4)


def _entry_key(entry: Entry) -> str:
    name, properties = entry
    if name in AIR_NAMES:
        return AIR_KEY
    state: dict[str, Any] = {"type": name}
    for key, value in properties:
        # A property named "type" (slabs, chests) must not replace the block's name.
        state["type_" if key == "type" else key] = value
    return state_key(state)


def _gids(entries: list[Entry]) -> list[int]:
    gids = _GIDS
    found = [gids.get(e, -1) for e in entries]
    if -1 in found:
        if len(_GIDS) > _LIMIT:  # a pathological world: start again rather than grow
            _GIDS.clear()
        for i, entry in enumerate(entries):
            if found[i] < 0:
                key = _entry_key(entry)
                gid = _BY_KEY.get(key)
                if gid is None:
                    gid = _BY_KEY[key] = len(_KEYS)
                    _KEYS.append(key)
                found[i] = gids[entry] = gid
    return found


def _longs_count(palette_size: int) -> tuple[int, int]:
    bits = max(4, (palette_size - 1).bit_length())
    return bits, -(-4096 // (64 // bits))


def _bytes(data: list[npt.NDArray[Any]]) -> npt.NDArray[np.uint8]:
    """The sections' longs as ``(len(data), 8 * longs)`` little-endian bytes."""
    # Concatenating converts the big-endian longs to native ones; then little-endian bytes
    # on every host.
    longs = np.concatenate(data).astype("<u8", copy=False)
    return longs.view(np.uint8).reshape(len(data), -1)


def _unpack(bits: int, data: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """``(len(data), 4096)`` indices of sections packed ``bits`` wide (lengths checked)."""
    if bits == 4:
        return _nibbles(_bytes(data))
    per_long = 64 // bits
    longs = np.concatenate(data).astype(np.uint64).reshape(len(data), -1, 1)
    shifts = np.arange(per_long, dtype=np.uint64) * np.uint64(bits)
    values = (longs >> shifts) & np.uint64((1 << bits) - 1)
    result: npt.NDArray[Any] = values.reshape(len(data), -1)[:, :4096]
    return result


def _nibbles(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """16 indices a long, lowest bits first: the low then the high nibble of each byte."""
    out = np.empty((raw.size, 2), dtype=np.uint8)
    np.bitwise_and(raw.reshape(-1), _NIBBLE, out=out[:, 0])
    np.right_shift(raw.reshape(-1), _FOUR, out=out[:, 1])
    return out.reshape(len(raw), 4096)


def _map(bits: int, values: npt.NDArray[Any], tables: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Sections' indices (4 bits: still packed) through their tables, all in one lookup."""
    rows = len(values)
    if bits == 4 and tables.dtype == np.uint8:
        # Two blocks a byte: a table of the 256 byte values per section (both blocks of a
        # byte as one little-endian uint16) maps a byte to its two blocks at once.
        pairs = np.empty((rows, 16, 16), dtype="<u2")
        np.left_shift(tables[:, :, None], 8, out=pairs, dtype="<u2")
        pairs |= tables[:, None, :]
        flat = _index_rows(rows * 2048).reshape(rows, 2048)
        base = (np.arange(rows, dtype=np.intp) * 256).reshape(-1, 1)
        np.add(values, base, out=flat, dtype=np.intp, casting="unsafe")
        return pairs.reshape(-1).take(flat).view(np.uint8)
    if bits == 4:
        values = _nibbles(values)
    width = tables.shape[1]
    flat = _index_rows(rows * 4096).reshape(rows, 4096)
    base = (np.arange(rows, dtype=np.intp) * width).reshape(-1, 1)
    np.add(values, base, out=flat, dtype=np.intp, casting="unsafe")
    return tables.reshape(-1).take(flat)


def section_indices(palette_size: int, data: Any) -> npt.NDArray[np.uint16]:
    """The 4,096 palette indices of one section, ``[y, z, x]``, from its packed longs."""
    array = np.asarray(data)
    if array.dtype.kind not in "iu" or array.dtype.itemsize != 8:
        raise ValueError("block_states data is not a long array")
    bits, expected = _longs_count(palette_size)
    if len(array) != expected:
        raise ValueError(
            f"block_states data has {len(array)} longs, {expected} expected for "
            f"{palette_size} states"
        )
    values = _unpack(bits, [array.astype(array.dtype.newbyteorder(">"))])[0]
    if int(values.max()) >= palette_size:
        raise ValueError(f"block_states index {int(values.max())} is past its palette")
    result: npt.NDArray[np.uint16] = values.astype(np.uint16).reshape(16, 16, 16)
    return result


def chunk_sections(
    sections: list[SectionTags],
) -> tuple[list[str], list[int], npt.NDArray[Any] | None]:
    """The column palette (air first), the ``Y`` of each section holding anything but air,
    and those sections' indices into the palette, ``[section, y, z, x]``.

    Raises ``ValueError`` naming the first bad section, in section order, as reading them
    one after the other would.
    """
    table = [0]  # air is index 0 of every column palette
    ys: list[int] = []
    offsets: list[int] = []
    groups: dict[int, list[int]] = {}
    packed: dict[int, tuple[int, npt.NDArray[Any]]] = {}
    failure: ValueError | None = None
    for section in sections:
        if not section.has_states:
            continue
        try:
            if section.y is None:
                raise ValueError("a section has no Y")
            entries = section.palette
            if entries is None:
                raise ValueError(f"section {section.y} has block states without a palette")
            if not entries:
                raise ValueError(f"section {section.y} has an empty palette")
            if section.data is None and len(entries) == 1 and entries[0][0] in AIR_NAMES:
                continue  # all air, and nothing for the palette (the common case above ground)
            gids = _gids(entries)
            if section.data is None:
                if gids[0] == 0:
                    table.extend(gids)
                    continue  # all air
            else:
                bits, expected = _longs_count(len(entries))
                if len(section.data) != expected:
                    raise ValueError(
                        f"block_states data has {len(section.data)} longs, {expected} "
                        f"expected for {len(entries)} states"
                    )
                groups.setdefault(bits, []).append(len(ys))
                packed[len(ys)] = (len(entries), section.data)
        except ValueError as exc:
            # Raised once the sections before this one are unpacked: an index past its
            # palette in one of them comes first, as when read one after the other.
            failure = exc
            break
        offsets.append(len(table))
        table.extend(gids)
        ys.append(section.y)
    unpacked = []
    past: list[tuple[int, int]] = []
    for bits, rows in groups.items():
        data = [packed[r][1] for r in rows]
        if bits == 4:  # kept packed, two blocks a byte, until mapped (below)
            values = _bytes(data)
            tops = np.maximum(values & _NIBBLE, values >> _FOUR).max(axis=1).tolist()
        else:
            values = _unpack(bits, data)
            tops = values.max(axis=1).tolist()
        past.extend((r, t) for r, t in zip(rows, tops, strict=True) if t >= packed[r][0])
        unpacked.append((bits, rows, values))
    if past:
        raise ValueError(f"block_states index {min(past)[1]} is past its palette")
    if failure is not None:
        raise failure
    palette, local = _column_palette(table)
    if not ys:
        return palette, [], None
    blocks = np.empty((len(ys), 4096), dtype=local.dtype)
    start = np.array(offsets, dtype=np.intp)
    if len(packed) < len(ys):  # sections of one state
        single = [i for i in range(len(ys)) if i not in packed]
        blocks[single] = local[start[single]].reshape(-1, 1)
    padded = np.zeros(len(local) + (1 << max(groups, default=0)), dtype=local.dtype)
    padded[: len(local)] = local
    for bits, rows, values in unpacked:
        # Each section's palette as column indices, one small table per section.
        tables = padded[start[rows].reshape(-1, 1) + np.arange(1 << bits)]
        mapped = _map(bits, values, tables)
        if len(rows) == len(ys):
            blocks = mapped
        else:
            blocks[rows] = mapped
    present = blocks.any(axis=1)
    if not present.all():
        keep = np.flatnonzero(present)
        if not len(keep):
            return palette, [], None
        ys = [ys[i] for i in keep.tolist()]
        blocks = blocks[keep]
    return palette, ys, blocks.reshape(len(ys), 16, 16, 16)


_SCRATCH = np.zeros(0, dtype=np.intp)
_INDEX = np.zeros(0, dtype=np.intp)


def _index_rows(n: int) -> npt.NDArray[np.intp]:
    """A reused buffer of ``n`` indices: a fresh one per chunk cost more in page faults
    (a third of a megabyte) than the lookup it feeds."""
    global _INDEX
    if len(_INDEX) < n:
        _INDEX = np.zeros(max(n, 32 * 4096), dtype=np.intp)
    return _INDEX[:n]


def _column_palette(
    table: list[int],
) -> tuple[list[str], npt.NDArray[Any]]:
    """The distinct keys of ``table`` in first-use order, and each entry's index among them."""
    global _SCRATCH
    distinct = list(dict.fromkeys(table))
    if len(_SCRATCH) < len(_KEYS):
        _SCRATCH = np.zeros(2 * len(_KEYS), dtype=np.intp)
    dtype = np.uint8 if len(distinct) <= 256 else np.uint16
    _SCRATCH[distinct] = np.arange(len(distinct))
    local = _SCRATCH[table].astype(dtype)
    return [_KEYS[g] for g in distinct], local
