"""``encode_chunk`` / ``decode_chunk``: the three steps of the codec, in order.

array -> sectioned body (``_sections``; the plain array when that does not pay) -> payload
(``_compress``; kept uncompressed when that does not pay) -> header and checksum
(``_frame``). Decoding runs the same steps backwards, each checking what it reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._compress import compress, decompress
from voxeldb.chunks.codec._frame import FLAG_PLAIN, Header, pack_frame, parse_frame
from voxeldb.chunks.codec._sections import as_sections, decode_sections, encode_sections


def encode_chunk(blocks: npt.NDArray[Any]) -> bytes:
    """Encode a ``(height, 16, 16)`` uint16/uint32 block array; see ``docs/chunk-format.md``."""
    sections = as_sections(blocks)
    flags = 0
    body = encode_sections(sections)
    if body is None:  # the palettes do not pay (noise): store the array as it is
        flags |= FLAG_PLAIN
        body = sections.tobytes()
    compression, payload = compress(body)
    header = Header(
        sections.itemsize, flags | compression, sections.shape[0] * 16, len(body), len(payload)
    )
    return pack_frame(header, payload)


def decode_chunk(data: bytes | bytearray | memoryview) -> npt.NDArray[Any]:
    """Decode bytes made by :func:`encode_chunk` back into a ``(height, 16, 16)`` array."""
    header, payload = parse_frame(data)
    # A plain body becomes the result as it is, so ask for one numpy may keep and write to.
    body = decompress(header.flags, payload, header.body_size, writable=header.plain)
    if header.plain:
        out = np.frombuffer(body, dtype=header.dtype)
        if body is payload:
            out = out.copy()  # never alias the caller's buffer
    else:
        out = decode_sections(body, header.sections, header.dtype)
    if not out.dtype.isnative:  # big-endian hosts only
        out = out.astype(out.dtype.newbyteorder("="))
    return out.reshape(header.height, 16, 16)
