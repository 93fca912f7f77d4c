"""The golden files: each decodes to its array and its array still encodes to it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.chunks.codec.helpers import (
    FLAG_LZ4,
    FLAG_PLAIN,
    GOLDEN,
    GOLDEN_NAMES,
    assert_same,
    parse,
)
from voxeldb.chunks.codec import decode_chunk, encode_chunk


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_decodes_to_its_array(name: str) -> None:
    expected = np.load(GOLDEN / f"{name}.npy")
    assert_same(decode_chunk((GOLDEN / f"{name}.bin").read_bytes()), expected)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_encoding_is_frozen(name: str) -> None:
    """Encoding changed: bump FORMAT_VERSION, keep decoding the old files (docs/chunk-format.md)."""
    expected = (GOLDEN / f"{name}.bin").read_bytes()
    assert encode_chunk(np.load(GOLDEN / f"{name}.npy")) == expected


def test_golden_set_covers_every_section_mode_and_flag() -> None:
    assert {"terrain", "air", "noise_u16", "big_ids_u32", "terrain_h256"} <= set(GOLDEN_NAMES)
    modes: set[int] = set()
    flags: set[int] = set()
    dtypes: set[int] = set()
    for name in GOLDEN_NAMES:
        p = parse((GOLDEN / f"{name}.bin").read_bytes())
        flags.add(p.flags)
        dtypes.add(p.dtype_code)
        if not p.flags & FLAG_PLAIN:
            modes.update(p.body[: p.height // 16])
    assert modes == {0, 4, 8, 16, 255}
    assert flags >= {FLAG_LZ4, FLAG_PLAIN}
    assert dtypes == {2, 4}
