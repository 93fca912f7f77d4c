"""Real Minecraft chunks for the codec benchmarks: the Anvil sample's block states as arrays.

``../shared/data/anvil-vanilla-sample`` (see its NOTICE.md) holds five region files of a
vanilla world. A region file ``r.X.Z.mca`` starts with 1,024 four-byte locations (a
three-byte offset in 4 KiB sectors and a sector count); at a chunk's offset come its length
(four bytes, big-endian), its compression type (2 = zlib here) and the compressed NBT.

This is a minimal NBT reader for what the benchmark needs, independent of voxeldb's
importer: each section's ``block_states`` (a palette of compounds and, unless the palette
has one entry, indices packed in 64-bit longs, at least 4 bits each, never spanning two
longs) becomes 4,096 ids through one id per distinct state, numbered in first-seen order
over the whole sample with air first (as a world's registry would). It also keeps the exact
bytes of each ``block_states`` tag, so that the baseline "Anvil's zlib'd block states" is
the zlib (level 6) compression of those bytes, chunk by chunk, as Anvil stores them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "anvil-vanilla-sample"
HEIGHT = 384  # y -64..319: sections -4..19
MIN_SECTION = -4

# Tag ids
_END, _BYTE, _SHORT, _INT, _LONG, _FLOAT, _DOUBLE = 0, 1, 2, 3, 4, 5, 6
_BYTES, _STRING, _LIST, _COMPOUND, _INTS, _LONGS = 7, 8, 9, 10, 11, 12
_FIXED = {_BYTE: 1, _SHORT: 2, _INT: 4, _LONG: 8, _FLOAT: 4, _DOUBLE: 8}
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")


class _Reader:
    """NBT payloads as Python values; ``spans`` records where each block_states tag lies."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.spans: list[tuple[int, int]] = []

    def string(self, at: int) -> tuple[str, int]:
        (n,) = _U16.unpack_from(self.data, at)
        return self.data[at + 2 : at + 2 + n].decode("utf-8", "replace"), at + 2 + n

    def payload(self, tag: int, at: int) -> tuple[Any, int]:
        data = self.data
        if tag in _FIXED:
            size = _FIXED[tag]
            fmt = {_BYTE: ">b", _SHORT: ">h", _INT: ">i", _LONG: ">q", _FLOAT: ">f"}.get(tag, ">d")
            return struct.unpack_from(fmt, data, at)[0], at + size
        if tag == _STRING:
            return self.string(at)
        if tag in (_BYTES, _INTS, _LONGS):
            (n,) = _I32.unpack_from(data, at)
            width = {_BYTES: 1, _INTS: 4, _LONGS: 8}[tag]
            end = at + 4 + n * width
            if tag == _LONGS:
                return np.frombuffer(data, ">i8", n, at + 4), end
            return data[at + 4 : end], end
        if tag == _LIST:
            item, (n,) = data[at], _I32.unpack_from(data, at + 1)
            at += 5
            items = []
            for _ in range(max(n, 0)):
                value, at = self.payload(item, at)
                items.append(value)
            return items, at
        if tag == _COMPOUND:
            out: dict[str, Any] = {}
            while True:
                kind = data[at]
                at += 1
                if kind == _END:
                    return out, at
                name, at = self.string(at)
                start = at - 3 - len(name.encode())
                out[name], at = self.payload(kind, at)
                if name == "block_states":
                    self.spans.append((start, at))
        raise ValueError(f"unknown NBT tag {tag} at {at}")

    def root(self) -> dict[str, Any]:
        if self.data[0] != _COMPOUND:
            raise ValueError("NBT root is not a compound")
        _, at = self.string(1)
        value, _ = self.payload(_COMPOUND, at)
        return value  # type: ignore[no-any-return]


def _state_key(entry: dict[str, Any]) -> str:
    props = entry.get("Properties") or {}
    inner = ",".join(f"{k}={props[k]}" for k in sorted(props))
    return f"{entry['Name']}[{inner}]" if inner else str(entry["Name"])


def _unpack(longs: npt.NDArray[Any], palette_size: int) -> npt.NDArray[np.intp]:
    bits = max(4, (palette_size - 1).bit_length())
    per_long = 64 // bits
    words = longs.astype(np.int64).view(np.uint64)
    shifts = (np.arange(per_long, dtype=np.uint64) * np.uint64(bits))[None, :]
    values = (words[:, None] >> shifts) & np.uint64((1 << bits) - 1)
    return values.reshape(-1)[:4096].astype(np.intp)


@dataclass
class AnvilChunk:
    cx: int
    cz: int
    blocks: npt.NDArray[np.uint16]  # (384, 16, 16) [y, z, x], ids of the sample's registry
    block_states_nbt: bytes  # every section's block_states tag, as stored, concatenated
    stored_bytes: int  # the chunk's compressed NBT in the region file (all of its data)

    @property
    def anvil_zlib_bytes(self) -> int:
        """The baseline: the chunk's block_states NBT zlib'd at level 6, as Anvil does."""
        return len(zlib.compress(self.block_states_nbt, 6))


def _region_chunks(path: Path) -> Iterator[tuple[int, bytes, int]]:
    data = path.read_bytes()
    for i in range(1024):
        loc = int.from_bytes(data[4 * i : 4 * i + 3], "big")
        if not loc:
            continue
        at = loc * 4096
        (length,) = struct.unpack_from(">i", data, at)
        kind = data[at + 4]
        if kind != 2:
            raise ValueError(f"{path.name}: chunk {i} uses compression {kind}, expected zlib")
        yield i, zlib.decompress(data[at + 5 : at + 4 + length]), length - 1


def load_chunks(sample: Path = SAMPLE) -> tuple[list[AnvilChunk], list[str]]:
    """The sample's chunks with status ``minecraft:full``, and the registry (id -> state)."""
    registry: dict[str, int] = {"minecraft:air": 0}
    chunks = []
    for path in sorted((sample / "region").glob("r.*.mca")):
        for _, raw, stored in _region_chunks(path):
            reader = _Reader(raw)
            root = reader.root()
            if root.get("Status") not in ("minecraft:full", "full"):
                continue
            blocks = np.zeros((HEIGHT // 16, 4096), np.uint16)
            for section in root.get("sections", []):
                s = section["Y"] - MIN_SECTION
                states = section.get("block_states")
                if states is None or not 0 <= s < HEIGHT // 16:
                    continue
                ids = np.array(
                    [registry.setdefault(_state_key(e), len(registry)) for e in states["palette"]],
                    np.uint16,
                )
                if ids.size == 1:
                    blocks[s] = ids[0]
                else:
                    blocks[s] = ids[_unpack(states["data"], ids.size)]
            nbt = b"".join(raw[a:b] for a, b in reader.spans)
            chunks.append(
                AnvilChunk(root["xPos"], root["zPos"], blocks.reshape(HEIGHT, 16, 16), nbt, stored)
            )
    names = sorted(registry, key=registry.__getitem__)
    return chunks, names


if __name__ == "__main__":
    loaded, names = load_chunks()
    print(f"{len(loaded)} full chunks, {len(names)} distinct block states")
    print(
        f"anvil block_states zlib-6: {sum(c.anvil_zlib_bytes for c in loaded)} bytes; "
        f"whole chunks as stored: {sum(c.stored_bytes for c in loaded)} bytes"
    )


# ------------------------------------------------------------------ held-out terrain

# voxeldb.terrain's states as a vanilla registry numbers them (roughly, 1.20): air 0,
# bedrock, stone, deepslate, dirt, grass, water, sand, gravel, then the ores.
_VANILLA_IDS = np.array(
    [0, 79, 1, 22318, 10, 9, 80, 112, 118, 127, 125, 22942, 123, 5735, 4274, 126, 124, 4275],
    np.uint16,
)
_STONE_BLOBS = np.array([2, 4, 6, 118], np.uint16)  # granite, diorite, andesite, gravel
_DEEPSLATE_BLOBS = np.array([21081, 22319, 118], np.uint16)  # tuff, deepslate (x), gravel
_PLANTS = np.array([2007, 2007, 2007, 2007, 2008, 2074, 2075, 2076, 2082, 2085], np.uint16)


def anvil_like_terrain(cx: int, cz: int, seed: int = 0) -> npt.NDArray[np.uint16]:
    """Held-out terrain with ids far above 32, as a real world has them.

    :func:`voxeldb.terrain.generate_chunk` with its states renumbered as a vanilla registry
    numbers them, plus what real chunks add: blobs of granite, diorite, andesite, gravel and
    tuff in the stone, a lit redstone ore beside unlit ones, and grass and flowers on about
    a fifth of the surface. About 20-30 distinct ids per chunk (the Anvil sample: median 34).
    """
    from voxeldb.terrain import generate_chunk

    terrain = generate_chunk(cx, cz, seed=seed)
    a = _VANILLA_IDS[terrain]
    rng = np.random.default_rng([seed, cx & 0xFFFF, cz & 0xFFFF])
    y, z, x = np.ogrid[:HEIGHT, :16, :16]
    for _ in range(10):  # ellipsoid blobs, replacing stone or deepslate only
        cy, c_z, c_x = rng.integers(0, 130), rng.integers(0, 16), rng.integers(0, 16)
        r = rng.uniform(1.5, 3.5)
        inside = (y - cy) ** 2 / 2 + (z - c_z) ** 2 + (x - c_x) ** 2 <= r * r
        stone, deep = inside & (a == 1), inside & (a == 22318)
        a[stone] = rng.choice(_STONE_BLOBS)
        a[deep] = rng.choice(_DEEPSLATE_BLOBS)
    redstone = np.flatnonzero(a.reshape(-1) == 5735)
    a.reshape(-1)[redstone[: redstone.size // 3]] = 5734  # lit
    top = HEIGHT - 1 - np.argmax((a[::-1] != 0) & (a[::-1] != 80), axis=0)  # (z, x)
    grass = (a[top, np.arange(16)[:, None], np.arange(16)[None, :]] == 9) & (top + 1 < HEIGHT)
    planted = grass & (rng.random((16, 16)) < 0.22)
    zz, xx = np.nonzero(planted)
    a[top[zz, xx] + 1, zz, xx] = rng.choice(_PLANTS, zz.size)
    return a
