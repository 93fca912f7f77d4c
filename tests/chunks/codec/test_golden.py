"""The golden files: each decodes to its array and its array still encodes to it.

``NAME.bin`` are the default encodings (LZ4, format version 1, unchanged since version 1
was the only one); ``NAME@METHOD.bin`` other compressions, zstd ones in format version 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from tests.chunks.codec.helpers import (
    FLAG_LZ4,
    FLAG_PLAIN,
    GOLDEN,
    GOLDEN_NAMES,
    ZSTD_ID,
    assert_same,
    compressor_id,
    golden_array,
    golden_method,
    parse,
)
from voxeldb.chunks.codec import decode_chunk, encode_chunk

ZSTD_THEN = (GOLDEN / "ZSTD_VERSION").read_text().strip()
ZSTD_NOW = ".".join(map(str, zstandard.ZSTD_VERSION))


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_decodes_to_its_array(name: str) -> None:
    assert_same(decode_chunk((GOLDEN / f"{name}.bin").read_bytes()), golden_array(name))


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_decodes_into_a_given_array(name: str) -> None:
    expected = golden_array(name)
    out = np.full_like(expected, 12345)
    assert decode_chunk((GOLDEN / f"{name}.bin").read_bytes(), out=out) is out
    assert_same(out, expected)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_encoding_is_frozen(name: str) -> None:
    """Encoding changed: bump FORMAT_VERSION, keep decoding the old files (docs/chunk-format.md)."""
    expected = (GOLDEN / f"{name}.bin").read_bytes()
    compression, level = golden_method(name)
    data = encode_chunk(golden_array(name), compression=compression, level=level)
    if data == expected:
        return
    # zstd may compress differently in another libzstd release; the format must not change.
    mine, theirs = parse(data), parse(expected)
    assert compressor_id(theirs) == ZSTD_ID and ZSTD_NOW != ZSTD_THEN, "encoding changed"
    assert (mine.version, mine.flags, mine.reserved, mine.body) == (
        theirs.version,
        theirs.flags,
        theirs.reserved,
        theirs.body,
    )


def test_golden_set_covers_every_section_mode_flag_and_compressor() -> None:
    assert {"terrain", "air", "noise_u16", "big_ids_u32", "terrain_h256"} <= set(GOLDEN_NAMES)
    assert {"terrain@zstd", "terrain@zstd-19", "terrain@none", "terrain@lz4-9"} <= set(GOLDEN_NAMES)
    modes: set[int] = set()
    flags: set[int] = set()
    dtypes: set[int] = set()
    headers: set[tuple[int, int]] = set()  # (version, compressor id)
    for name in GOLDEN_NAMES:
        p = parse((GOLDEN / f"{name}.bin").read_bytes())
        flags.add(p.flags)
        dtypes.add(p.dtype_code)
        headers.add((p.version, compressor_id(p)))
        if not p.flags & FLAG_PLAIN:
            modes.update(p.body[: p.height // 16])
    assert modes == {0, 4, 8, 16, 255}
    assert flags >= {FLAG_LZ4, FLAG_PLAIN, 0}
    assert dtypes == {2, 4}
    assert headers == {(1, 0), (1, 1), (2, ZSTD_ID)}


def test_zstd_golden_files_are_version_2_and_the_rest_version_1() -> None:
    for name in GOLDEN_NAMES:
        p = parse((GOLDEN / f"{name}.bin").read_bytes())
        assert p.version == (2 if compressor_id(p) == ZSTD_ID else 1), name
