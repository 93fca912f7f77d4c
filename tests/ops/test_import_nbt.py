"""The importer's NBT reader (``ops/_import/_nbt``) against nbtlib, which parses everything.

``read_chunk`` skips what the importer drops without parsing it; what it keeps must be what
nbtlib reads from the same bytes, on every full chunk of the Anvil sample and on documents
with every tag type where the importer skips them. Cut or corrupted bytes must raise (the
import names the chunk damaged), never be read as something else.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import nbtlib  # type: ignore[import-untyped]
import numpy as np
import pytest

from tests._services import require_external
from tests.ops import _mca
from voxeldb.ops._import import _anvil
from voxeldb.ops._import._nbt import parse_block_entities, read_chunk
from voxeldb.ops._import._parsed import state_key

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "anvil-vanilla-sample"


def _full_chunks(limit: int | None = None) -> list[bytes]:
    require_external(SAMPLE.is_dir(), f"the Anvil sample {SAMPLE}", "shared/ beside the clone")
    found = []
    for region in sorted((SAMPLE / "region").glob("r.*.mca")):
        for _key, (_kind, payload) in sorted(_mca.read_region(region).items()):
            raw = zlib.decompress(payload)
            if b"minecraft:full" in raw:
                found.append(raw)
                if limit is not None and len(found) >= limit:
                    return found
    return found


def _nbt(root: nbtlib.Compound) -> bytes:
    out = io.BytesIO()
    nbtlib.File(root).write(out)
    return out.getvalue()


def _same_as_nbtlib(raw: bytes) -> None:
    root = nbtlib.File.parse(io.BytesIO(raw))
    tags = read_chunk(raw)
    assert tags.data_version == (int(root["DataVersion"]) if "DataVersion" in root else None)
    assert tags.status == (str(root["Status"]) if "Status" in root else None)
    for key, got in (("xPos", tags.x), ("yPos", tags.y), ("zPos", tags.z)):
        assert got == (int(root[key]) if key in root else None), key
    assert tags.old == ("Level" in root)
    entities = root.get("block_entities")
    if entities:
        assert tags.block_entities is not None
        assert parse_block_entities(tags.block_entities) == entities
    else:
        assert tags.block_entities is None
    if "sections" not in root:
        assert tags.sections is None
        return
    assert tags.sections is not None and len(tags.sections) == len(root["sections"])
    for ours, theirs in zip(tags.sections, root["sections"], strict=True):
        assert ours.y == int(theirs["Y"])
        states = theirs.get("block_states")
        assert ours.has_states == (states is not None)
        if states is None:
            continue
        palette = [
            (str(e["Name"]), tuple((str(k), str(v)) for k, v in e.get("Properties", {}).items()))
            for e in states["palette"]
        ]
        assert ours.palette == palette
        if "data" in states:
            assert ours.data is not None
            assert np.array_equal(ours.data.astype(np.int64), np.asarray(states["data"]))
        else:
            assert ours.data is None


def test_every_full_chunk_of_the_sample_reads_as_nbtlib_reads_it() -> None:
    chunks = _full_chunks()
    assert len(chunks) == 471
    for raw in chunks:
        _same_as_nbtlib(raw)


def _odd_chunk() -> nbtlib.Compound:
    """Every tag type, where the reader skips it and where it reads around it."""
    t = nbtlib.tag
    section = t.Compound(
        {
            "BlockLight": t.ByteArray([1, 2, 3]),
            "extra": t.List[t.List[t.Short]]([t.List[t.Short]([1, 2]), t.List[t.Short]()]),
            "Y": t.Byte(-2),
            "block_states": t.Compound(
                {
                    "comment": t.String("skipped"),
                    "palette": t.List[t.Compound](
                        [
                            t.Compound({"Name": t.String("minecraft:air")}),
                            t.Compound(
                                {
                                    "x": t.IntArray([7]),
                                    "Properties": t.Compound(
                                        {"facing": t.String("east"), "type": t.String("top")}
                                    ),
                                    "Name": t.String("minecraft:oak_slab"),
                                }
                            ),
                        ]
                    ),
                    "data": t.LongArray([0x1111111111111111] * 256),
                }
            ),
            "biomes": t.Compound({"palette": t.List[t.String]([t.String("minecraft:plains")])}),
        }
    )
    return t.Compound(
        {
            "f": t.Float(1.5),
            "d": t.Double(2.5),
            "l": t.Long(-3),
            "deep": t.Compound({"a": t.List[t.Compound]([t.Compound({"b": t.List[t.Int]([1])})])}),
            "Heightmaps": t.Compound({"WORLD_SURFACE": t.LongArray([1, 2])}),
            "empty": t.List[t.End](),
            "sections": t.List[t.Compound]([section, t.Compound({"Y": t.Byte(3)})]),
            "xPos": t.Int(-7),
            "zPos": t.Int(12),
            "yPos": t.Int(-4),
            "Status": t.String("minecraft:full"),
            "DataVersion": t.Int(4671),
            "block_entities": t.List[t.Compound](
                [t.Compound({"id": t.String("minecraft:chest"), "x": t.Int(1)})]
            ),
            "PostProcessing": t.List[t.List[t.Short]]([t.List[t.Short]([5, 6, 7])] * 24),
        }
    )


def test_every_tag_type_is_skipped_or_read_as_nbtlib_reads_it() -> None:
    raw = _nbt(_odd_chunk())
    _same_as_nbtlib(raw)
    column = _anvil.parse_chunk_nbt(-7, 12, raw)
    assert column.damaged is None and column.skipped is None
    assert column.palette[1] == '{"facing":"east","type":"minecraft:oak_slab","type_":"top"}'
    (y, indices), = column.sections  # fmt: skip
    assert y == -2 and (indices == 1).all()
    assert column.metadata == {
        "source": "anvil",
        "block_entities": [{"id": "minecraft:chest", "x": 1}],
    }
    old = _odd_chunk()
    old["Level"] = nbtlib.tag.Compound({"sections": nbtlib.tag.List[nbtlib.tag.Compound]()})
    assert read_chunk(_nbt(old)).old


@pytest.mark.parametrize("cut", [1, 2, 40, 0.25, 0.5, 0.9, -2, -1])
def test_cut_chunks_raise(cut: float) -> None:
    """A chunk cut short anywhere is refused, never read as a smaller one."""
    raw = _full_chunks(limit=1)[0]
    keep = int(len(raw) * cut) if isinstance(cut, float) else cut % len(raw)
    with pytest.raises((ValueError, IndexError, struct.error)):
        read_chunk(raw[:keep])


def test_wrong_types_where_the_reader_reads_raise() -> None:
    bad_data = _odd_chunk()
    bad_data["sections"][0]["block_states"]["data"] = nbtlib.tag.IntArray([1, 2])
    with pytest.raises(ValueError, match="not a long array"):
        read_chunk(_nbt(bad_data))
    bad_palette = _odd_chunk()
    bad_palette["sections"][0]["block_states"]["palette"] = nbtlib.tag.List[nbtlib.tag.String](
        [nbtlib.tag.String("minecraft:stone")]
    )
    with pytest.raises(ValueError, match="not a list of compounds"):
        read_chunk(_nbt(bad_palette))
    no_name = _odd_chunk()
    del no_name["sections"][0]["block_states"]["palette"][1]["Name"]
    with pytest.raises(ValueError, match="no Name"):
        read_chunk(_nbt(no_name))
    with pytest.raises(ValueError, match="not a compound"):
        read_chunk(b"\x09\x00\x00")


def test_a_damaged_chunk_is_a_damaged_column() -> None:
    """Through the importer's own entry: a cut chunk is named damaged, nothing raises."""
    raw = _full_chunks(limit=1)[0]
    slot = _anvil.Slot("r.0.0.mca", 0, 0, 3, raw[: len(raw) // 2])
    column = _anvil.parse_batch([slot])[0]
    assert column.damaged is not None and "chunk (0, 0) in r.0.0.mca" in column.damaged


def _reference_column(raw: bytes) -> tuple[list[str], dict[int, np.ndarray]]:
    """The column as a section at a time, by nbtlib and a plain shift per index."""
    root = nbtlib.File.parse(io.BytesIO(raw))
    keys = ['{"type":"air"}']
    blocks = {}
    for section in root["sections"]:
        states = section.get("block_states")
        if states is None:
            continue
        local = []
        for entry in states["palette"]:
            name = str(entry["Name"])
            state = {"type": name}
            for key, value in entry.get("Properties", {}).items():
                state["type_" if key == "type" else str(key)] = str(value)
            key = '{"type":"air"}' if name == "minecraft:air" else state_key(state)
            if key not in keys:
                keys.append(key)
            local.append(keys.index(key))
        if "data" not in states:
            indices = np.zeros(4096, dtype=np.int64)
        else:
            bits = max(4, (len(local) - 1).bit_length())
            per_long = 64 // bits
            longs = [int(v) & (2**64 - 1) for v in states["data"]]
            indices = np.array(
                [
                    (longs[i // per_long] >> (bits * (i % per_long))) & ((1 << bits) - 1)
                    for i in range(4096)
                ]
            )
        mapped = np.array(local)[indices]
        if mapped.any():
            blocks[int(section["Y"])] = mapped.reshape(16, 16, 16)
    return keys, blocks


def test_full_chunks_unpack_as_a_section_at_a_time() -> None:
    """All sections of a chunk at once (``_blockstates``) against a plain reading of each,
    on every eighth full chunk of the sample (the plain reading is slow)."""
    for raw in _full_chunks()[::8]:
        keys, blocks = _reference_column(raw)
        root = read_chunk(raw)
        column = _anvil.parse_chunk_nbt(root.x, root.z, raw)
        assert column.damaged is None and column.palette == keys
        assert column.ys == list(blocks)
        for y, indices in column.sections:
            assert np.array_equal(indices, blocks[y]), y


def _chunk_with(sections: list[nbtlib.Compound]) -> bytes:
    chunk = _odd_chunk()
    chunk["sections"] = nbtlib.tag.List[nbtlib.tag.Compound](sections)
    return _nbt(chunk)


def _section(y: int, names: list[str], indices: list[int]) -> nbtlib.Compound:
    t = nbtlib.tag
    bits = max(4, (len(names) - 1).bit_length())
    per_long = 64 // bits
    longs = []
    for start in range(0, 4096, per_long):
        value = 0
        for i, index in enumerate(indices[start : start + per_long]):
            value |= index << (bits * i)
        longs.append(value - (1 << 64) if value >= 1 << 63 else value)
    palette = t.List[t.Compound]([t.Compound({"Name": t.String(n)}) for n in names])
    states = t.Compound({"palette": palette, "data": t.LongArray(longs)})
    return t.Compound({"Y": t.Byte(y), "block_states": states})


def test_wide_palettes_and_the_first_bad_section_named() -> None:
    names = ["minecraft:air"] + [f"minecraft:b{i}" for i in range(40)]  # 6 bits
    wide = _section(0, names, [i % 41 for i in range(4096)])
    small = _section(1, ["minecraft:stone", "minecraft:air"], [i % 2 for i in range(4096)])
    column = _anvil.parse_chunk_nbt(-7, 12, _chunk_with([wide, small]))
    assert column.ys == [0, 1] and len(column.palette) == 42
    first, second = column.blocks if column.blocks is not None else (None, None)
    assert first is not None and second is not None
    assert column.palette[int(first.reshape(-1)[5])] == '{"type":"minecraft:b4"}'
    assert column.palette[int(second.reshape(-1)[0])] == '{"type":"minecraft:stone"}'
    assert int(second.reshape(-1)[1]) == 0
    past = _section(2, ["minecraft:stone", "minecraft:dirt"], [3] * 4096)
    short = _section(3, ["minecraft:stone", "minecraft:dirt"], [0] * 4096)
    short["block_states"]["data"] = nbtlib.tag.LongArray([0] * 10)
    # The earlier section's error is named, as reading them one by one would.
    with pytest.raises(ValueError, match="index 3 is past its palette"):
        _anvil.parse_chunk_nbt(-7, 12, _chunk_with([wide, past, short]))
    with pytest.raises(ValueError, match="has 10 longs, 256 expected"):
        _anvil.parse_chunk_nbt(-7, 12, _chunk_with([wide, short, past]))
