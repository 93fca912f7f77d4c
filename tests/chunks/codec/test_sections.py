"""The sectioned body: modes, palettes, both encoder paths, and a body that lies."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import pytest

from tests.chunks.codec.helpers import assert_same, parse, reseal, section_with, with_body
from voxeldb.chunks.codec import _palette, decode_chunk, encode_chunk
from voxeldb.errors import ChunkFormatError
from voxeldb.terrain import generate_chunk


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("palette", [2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 2046, 2047, 4096])
def test_palette_sizes_at_every_width_boundary(dtype: type, palette: int) -> None:
    top = int(np.iinfo(dtype).max)
    ids = np.linspace(0, top, palette, dtype=np.float64).astype(dtype)
    ids[-1] = top
    assert np.unique(ids).size == palette
    sec = section_with(ids, dtype, seed=palette)
    a = np.concatenate([sec, np.zeros((16, 16, 16), dtype), sec[::-1]])
    data = encode_chunk(a)
    assert len(data) <= a.nbytes + 256
    assert_same(decode_chunk(data), a)


def test_mixed_modes_in_any_order() -> None:
    u = np.uint16
    secs = [
        section_with([1, 2], u, 1),
        np.full((16, 16, 16), 9, u),
        section_with(np.arange(200), u, 2),
        section_with([4, 5, 6], u, 3),
        np.random.default_rng(4).integers(0, 65536, (16, 16, 16)).astype(u),
        section_with([1, 2], u, 5),
        section_with(np.arange(10, 20), u, 6),
        np.full((16, 16, 16), 3, u),
        section_with(np.arange(10, 26), u, 7),
    ]
    a = np.concatenate(secs)
    assert_same(decode_chunk(encode_chunk(a)), a)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_small_ids_every_width_in_scattered_groups(dtype: type) -> None:
    """Ids below 32 take the encoder's bit-mask path: every width, groups not contiguous."""
    secs = [
        section_with([0, 31], dtype, 1),
        np.full((16, 16, 16), 31, dtype),
        section_with(np.arange(20, 32), dtype, 2),
        section_with([3, 4, 5], dtype, 3),
        section_with(np.arange(0, 32), dtype, 4),  # 8-bit
        section_with([7, 9], dtype, 5),
        np.zeros((16, 16, 16), dtype),
        section_with(np.arange(1, 18), dtype, 6),  # 8-bit
        section_with([30, 1, 2, 28], dtype, 7),
    ]
    a = np.concatenate(secs)
    data = encode_chunk(a)
    assert_same(decode_chunk(data), a)
    assert list(parse(data).body[: len(secs)]) == [4, 0, 4, 4, 8, 4, 0, 8, 4]
    assert_same(decode_chunk(encode_chunk(a[:, :, ::-1])), a[:, :, ::-1])


@pytest.mark.parametrize("seed", range(4))
def test_bit_mask_and_sorting_paths_write_the_same_bytes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    dtype = (np.uint16, np.uint32)[seed % 2]
    secs = [
        section_with(rng.choice(32, int(rng.integers(1, 33)), replace=False), dtype, seed + i)
        for i in range(12)
    ]
    a = np.concatenate([generate_chunk(seed, 0, height=64).astype(dtype), *secs])
    fast = encode_chunk(a)
    monkeypatch.setattr(_palette, "SMALL_IDS", 0)  # force the general path
    assert encode_chunk(a) == fast
    assert_same(decode_chunk(fast), a)


@pytest.mark.parametrize("mode", [1, 2, 3, 5, 7, 9, 32, 254])
def test_unknown_section_mode(terrain_bytes: bytes, mode: int) -> None:
    body = bytearray(parse(terrain_bytes).body)
    body[3] = mode
    with pytest.raises(ChunkFormatError, match=f"section 3 has unknown mode {mode}"):
        decode_chunk(with_body(terrain_bytes, bytes(body)))


@pytest.mark.parametrize("change", [-4, -1, 1, 4, 4096])
def test_body_size_inconsistent_with_the_section_table(terrain_bytes: bytes, change: int) -> None:
    body = parse(terrain_bytes).body
    body = body[:change] if change < 0 else body + bytes(change)
    with pytest.raises(ChunkFormatError, match=r"section table|shorter|limit"):
        decode_chunk(with_body(terrain_bytes, body))


def test_body_shorter_than_its_mode_table(terrain_bytes: bytes) -> None:
    with pytest.raises(ChunkFormatError, match="mode table"):
        decode_chunk(with_body(terrain_bytes, bytes(10)))


def _u32_with_a_16bit_palette() -> tuple[npt.NDArray[np.uint32], bytes, int]:
    ids = np.arange(1000, dtype=np.uint32) * 977 + 5
    a = np.concatenate([np.zeros((16, 16, 16), np.uint32), section_with(ids, np.uint32)])
    data = encode_chunk(a)
    body = parse(data).body
    assert body[:2] == bytes([0, 16])
    return a, data, len(ids)


def test_palette_index_out_of_range() -> None:
    a, data, p = _u32_with_a_16bit_palette()
    assert_same(decode_chunk(data), a)
    body = bytearray(parse(data).body)
    # The last index of the 16-bit section is the body's last u16.
    struct.pack_into("<H", body, len(body) - 2, p)
    with pytest.raises(ChunkFormatError, match="palette index out of range in section 1"):
        decode_chunk(with_body(data, bytes(body)))


@pytest.mark.parametrize("length", [0, 2**16 + 1, 2**32 - 1])
def test_16bit_palette_length_out_of_range(length: int) -> None:
    _, data, _ = _u32_with_a_16bit_palette()
    body = bytearray(parse(data).body)
    struct.pack_into("<I", body, 4, length)  # after the 2-byte mode table and its padding
    with pytest.raises(ChunkFormatError, match="palette length"):
        decode_chunk(with_body(data, bytes(body)))


def test_resealed_flip_of_a_palette_entry_decodes_to_what_the_bytes_say(
    terrain_bytes: bytes,
) -> None:
    """Past the checksum nothing is guessed: a re-sealed edit is data, decoded as written."""
    p = parse(terrain_bytes)
    nsec = p.height // 16
    body = bytearray(p.body)
    pal_off = (nsec + 3) & ~3
    n_uniform = body[:nsec].count(0)
    assert body[nsec - 1] == 0
    struct.pack_into("<H", body, pal_off + 2 * (n_uniform - 1), 17)  # the top section's id
    got = decode_chunk(with_body(terrain_bytes, bytes(body)))
    assert (got[-16:] == 17).all()
    assert reseal(terrain_bytes) == terrain_bytes


def _held_out_terrain(dtype: type, seed: int) -> npt.NDArray[np.generic]:
    """Generated terrain with its ids moved above 32 and scattered extra states."""
    rng = np.random.default_rng(seed)
    mapping = rng.choice(np.arange(33, 30000), 18, replace=False).astype(dtype)
    a = mapping[generate_chunk(seed, 3, height=128, min_y=-64)]
    a.reshape(-1)[rng.integers(0, a.size, 300)] = rng.integers(33, 3000, 300).astype(dtype)
    return a


_NO_PRESENCE = {"PRESENT_LIMIT": 0}
_PATHS = {  # what to switch off, and the path that leaves
    "ids not small": {"SMALL_IDS": 0},
    "presence table always": {"SMALL_IDS": 0, "PRESENT_LIMIT": 1 << 30},
    "no presence table": _NO_PRESENCE,
    "no bit masks": {"SMALL_IDS": 0, "FEW_IDS": 0, **_NO_PRESENCE},
    "binary search": {"TABLE_LIMIT": 0, **_NO_PRESENCE},
    "no bit masks, binary search": {
        "SMALL_IDS": 0,
        "FEW_IDS": 0,
        "TABLE_LIMIT": 0,
        **_NO_PRESENCE,
    },
    "sorting sections": {"SMALL_IDS": 0, "NOISY_RUNS": 0, **_NO_PRESENCE},
    "never sorting sections": {"SMALL_IDS": 0, "FEW_IDS": 0, "NOISY_RUNS": 2, **_NO_PRESENCE},
    "no id table": {"REMEMBERED_IDS": 0, **_NO_PRESENCE},
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("path", list(_PATHS))
def test_every_palette_path_writes_the_same_bytes(
    seed: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dtype = (np.uint16, np.uint32)[seed % 2]
    rng = np.random.default_rng(seed)
    chunks = [
        _held_out_terrain(dtype, seed),
        # 40 and 70 ids, palettes from 1 to 40 / 70 per section
        np.concatenate(
            [section_with(rng.choice(40, k, replace=False) + 100, dtype, k) for k in range(1, 41)]
        ),
        np.concatenate(
            [section_with(rng.choice(70, k, replace=False) * 9, dtype, k) for k in range(1, 71)]
        ),
        # large palettes: 4-, 8- and 16-bit sections and a plain one
        np.concatenate(
            [
                section_with(rng.choice(60000, k, replace=False), dtype, k)
                for k in (3, 17, 200, 256, 257, 1500, 4096)
            ]
        ),
    ]
    expected = [encode_chunk(a) for a in chunks]
    for name, value in _PATHS[path].items():
        monkeypatch.setattr(_palette, name, value)
    for a, data in zip(chunks, expected, strict=True):
        _palette._known.__dict__.clear()
        assert encode_chunk(a) == data
        assert encode_chunk(a) == data  # again, with the thread's id table warm
        assert_same(decode_chunk(data), a)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_presence_table_with_every_id_of_a_byte_in_one_section(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids 0..255 all in one section: its palette of 256 counts to 0 in a byte."""
    a = np.concatenate([section_with(np.arange(256), dtype, 1), section_with([40, 255], dtype, 2)])
    data = encode_chunk(a)
    assert list(parse(data).body[:2]) == [8, 4]
    monkeypatch.setattr(_palette, "PRESENT_LIMIT", 0)
    assert encode_chunk(a) == data
    assert_same(decode_chunk(data), a)


def _runs_of(ids: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint16]:
    """Terrain-like sections (long runs) using every one of ``ids``, large and spread out so
    that the chunk takes the thread's id table, not the presence table."""
    runs = np.repeat(ids, -(-8192 // ids.size))[:8192].reshape(32, 16, 16)
    return np.concatenate([runs, runs[::-1, ::-1], np.full((16, 16, 16), ids[0], np.uint16)])


@pytest.mark.parametrize("known", [20, 31, 32, 40, 63, 64])
def test_an_id_the_threads_table_does_not_know_is_never_numbered_as_another(
    known: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of the last chunks' ids maps every other id to the masks' top bit (31 or
    63): a chunk with such an id leaves the table's path, whatever the table's size."""
    ids = np.arange(known, dtype=np.uint16) * 400 + 1000
    first = _runs_of(ids)
    tables: list[int] = []
    masks = _palette._masks
    monkeypatch.setattr(_palette, "_masks", lambda c, b: tables.append(b) or masks(c, b))
    # Ids between the known ones, below them all, and equal to a code's or the top bit's.
    for extra in (1001, 999, known - 1, 31, 63):
        second = first.copy()
        second[20, 5, 5] = extra
        _palette._known.__dict__.clear()
        alone = encode_chunk(second)
        _palette._known.__dict__.clear()
        encode_chunk(first)  # the thread now knows the ids of ``first`` only
        tables.clear()
        assert encode_chunk(second) == alone
        assert tables == ([] if known == 64 else [5 if known < 32 else 6])  # the table was tried
        assert_same(decode_chunk(alone), second)


def test_the_threads_id_table_numbers_little_endian() -> None:
    """Two neighbouring codes are read as one little-endian word (the pair keys): codes in
    the host's order would pair the wrong blocks on a big-endian host."""
    _palette._known.__dict__.clear()
    ids = np.arange(20, dtype=np.uint16) * 400 + 1000
    encode_chunk(_runs_of(ids))
    assert _palette._known.table.dtype == np.dtype("<u2")


def test_the_ids_of_earlier_chunks_never_change_the_bytes() -> None:
    """The thread's table of known ids is a shortcut only."""
    rng = np.random.default_rng(9)
    chunks = [_held_out_terrain(np.uint16, s) for s in range(6)]
    chunks.append(chunks[0][:, ::-1].copy())
    chunks.append(np.concatenate([section_with(np.arange(50) * 3 + 40, np.uint16), chunks[1]]))
    chunks.append(np.concatenate([section_with(rng.choice(400, 60, replace=False), np.uint16)]))
    chunks.append(chunks[2].astype(np.uint32))
    alone = []
    for a in chunks:
        _palette._known.__dict__.clear()
        alone.append(encode_chunk(a))
    for order in (list(range(len(chunks))), list(range(len(chunks)))[::-1], [0, 7, 1, 8, 9, 2]):
        for i in order:
            assert encode_chunk(chunks[i]) == alone[i]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_runs_across_section_borders(dtype: type) -> None:
    """An id whose run starts in one section and ends in the next is in both palettes."""
    a = np.full((48, 16, 16), 40, dtype)
    a[:15] = 41
    a[17:20] = 42
    a[40, 3, 3] = 7
    data = encode_chunk(a)
    assert_same(decode_chunk(data), a)
    assert list(parse(data).body[:3]) == [4, 4, 4]


def test_threads_encoding_different_worlds_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    chunks = [_held_out_terrain(np.uint16, s) for s in range(8)]
    chunks += [generate_chunk(s, 1, height=128, min_y=-64) for s in range(4)]
    expected = [encode_chunk(a) for a in chunks]

    def work(k: int) -> bool:
        order = np.random.default_rng(k).permutation(len(chunks))
        return all(encode_chunk(chunks[i]) == expected[i] for _ in range(5) for i in order)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(8)))
