"""A second, independent Anvil reader for the import tests: plain ``struct``, no numpy, no nbtlib.

It also writes region files (any compression type, external ``.mcc`` files), so the tests can
make worlds the sample does not have. Written from the format's description (minecraft.wiki,
"Region file format" and "Chunk format"), not from the importer.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import lz4.block

SECTOR = 4096


def parse_nbt(data: bytes) -> Any:
    """The root compound of uncompressed NBT as nested dicts/lists/ints/floats/strs."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + n]
        assert len(out) == n, "NBT cut short"
        pos += n
        return out

    def string() -> str:
        (n,) = struct.unpack(">H", take(2))
        return take(n).decode("utf-8")

    def payload(tag: int) -> Any:
        if tag == 1:
            return struct.unpack(">b", take(1))[0]
        if tag == 2:
            return struct.unpack(">h", take(2))[0]
        if tag == 3:
            return struct.unpack(">i", take(4))[0]
        if tag == 4:
            return struct.unpack(">q", take(8))[0]
        if tag == 5:
            return struct.unpack(">f", take(4))[0]
        if tag == 6:
            return struct.unpack(">d", take(8))[0]
        if tag == 7:
            (n,) = struct.unpack(">i", take(4))
            return list(struct.unpack(f">{n}b", take(n)))
        if tag == 8:
            return string()
        if tag == 9:
            kind = take(1)[0]
            (n,) = struct.unpack(">i", take(4))
            return [payload(kind) for _ in range(n)]
        if tag == 10:
            out = {}
            while True:
                kind = take(1)[0]
                if kind == 0:
                    return out
                name = string()
                out[name] = payload(kind)
        if tag == 11:
            (n,) = struct.unpack(">i", take(4))
            return list(struct.unpack(f">{n}i", take(4 * n)))
        if tag == 12:
            (n,) = struct.unpack(">i", take(4))
            return list(struct.unpack(f">{n}q", take(8 * n)))
        raise AssertionError(f"tag {tag}")

    assert take(1)[0] == 10
    string()
    return payload(10)


def read_region(path: Path) -> dict[tuple[int, int], tuple[int, bytes]]:
    """``(cx, cz) -> (compression type, payload)`` of a region file ``r.X.Z.mca``."""
    _, rx, rz, _ = path.name.split(".")
    raw = path.read_bytes()
    out = {}
    for i in range(1024):
        offset = int.from_bytes(raw[4 * i : 4 * i + 3], "big")
        if offset == 0:
            continue
        start = offset * SECTOR
        length = int.from_bytes(raw[start : start + 4], "big")
        out[(int(rx) * 32 + i % 32, int(rz) * 32 + i // 32)] = (
            raw[start + 4],
            raw[start + 5 : start + 4 + length],
        )
    return out


def chunk_nbt(path: Path, cx: int, cz: int) -> Any:
    kind, payload = read_region(path)[(cx, cz)]
    assert kind == 2
    return parse_nbt(zlib.decompress(payload))


def lz4_java(data: bytes) -> bytes:
    """lz4-java's ``LZ4BlockOutputStream`` framing: one compressed block and the end mark."""
    block = lz4.block.compress(data, store_size=False)
    head = b"LZ4Block" + bytes([0x20 | 6]) + struct.pack("<iii", len(block), len(data), 0)
    end = b"LZ4Block" + bytes([0x10 | 6]) + struct.pack("<iii", 0, 0, 0)
    return head + block + end


def write_region(
    directory: Path, rx: int, rz: int, chunks: dict[tuple[int, int], tuple[int, bytes]]
) -> Path:
    """A region file of ``(cx, cz) -> (type, payload)``; type + 128 writes a ``.mcc``."""
    header = bytearray(2 * SECTOR)
    body = bytearray()
    for (cx, cz), (kind, payload) in chunks.items():
        index = (cx % 32) + (cz % 32) * 32
        if kind & 128:
            (directory / f"c.{cx}.{cz}.mcc").write_bytes(payload)
            payload = b""
        blob = struct.pack(">IB", len(payload) + 1, kind) + payload
        blob += b"\0" * (-len(blob) % SECTOR)
        offset = 2 + len(body) // SECTOR
        header[4 * index : 4 * index + 4] = ((offset << 8) | (len(blob) // SECTOR)).to_bytes(
            4, "big"
        )
        body += blob
    path = directory / f"r.{rx}.{rz}.mca"
    path.write_bytes(bytes(header) + bytes(body))
    return path


def blocks_of(chunk: Any, x: int, y: int, z: int) -> dict[str, Any]:
    """The importer's expected state for block ``(x, y, z)`` (local x, z) of a chunk."""
    for section in chunk["sections"]:
        if section["Y"] != y >> 4 or "block_states" not in section:
            continue
        states = section["block_states"]
        palette = states["palette"]
        if "data" not in states:
            entry = palette[0]
        else:
            bits = max(4, (len(palette) - 1).bit_length())
            per_long = 64 // bits
            index = ((y & 15) << 8) | (z << 4) | x
            word = states["data"][index // per_long] & 0xFFFFFFFFFFFFFFFF
            entry = palette[(word >> ((index % per_long) * bits)) & ((1 << bits) - 1)]
        if entry["Name"] == "minecraft:air":
            return {"type": "air"}
        state = {"type": entry["Name"]}
        for key, value in entry.get("Properties", {}).items():
            state["type_" if key == "type" else key] = value
        return state
    return {"type": "air"}


def nbt_bytes(root: dict[str, Any]) -> bytes:
    """Uncompressed NBT of a compound of ints (TAG_Int), strings and compounds."""

    def name(text: str) -> bytes:
        raw = text.encode()
        return struct.pack(">H", len(raw)) + raw

    def compound(value: dict[str, Any]) -> bytes:
        out = b""
        for key, item in value.items():
            if isinstance(item, dict):
                out += b"\x0a" + name(key) + compound(item)
            elif isinstance(item, str):
                out += b"\x08" + name(key) + name(item)
            else:
                out += b"\x03" + name(key) + struct.pack(">i", item)
        return out + b"\x00"

    return b"\x0a" + name("") + compound(root)
