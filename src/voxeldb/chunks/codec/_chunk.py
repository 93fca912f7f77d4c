"""``encode_chunk`` / ``decode_chunk``: the three steps of the codec, in order.

array -> sectioned body (``_sections``; the plain array when that does not pay) -> payload
(``_compress``; kept uncompressed when that does not pay) -> header and checksum
(``_frame``). Decoding runs the same steps backwards, each checking what it reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voxeldb.chunks.codec._compress import compress, decompress, resolve
from voxeldb.chunks.codec._frame import FLAG_PLAIN, Header, pack_frame, parse_frame
from voxeldb.chunks.codec._sections import as_sections, decode_sections, encode_sections
from voxeldb.errors import ChunkFormatError


def encode_chunk(
    blocks: npt.NDArray[Any], *, compression: str = "lz4", level: int | None = None
) -> bytes:
    """Encode a ``(height, 16, 16)`` uint16/uint32 block array; see ``docs/chunk-format.md``.

    ``compression`` is ``"lz4"`` (the default), ``"zstd"`` or ``"none"``; ``level`` is
    optional (lz4: 1-12, its high-compression mode; zstd: 1-22, default 3). Anything else
    raises :class:`~voxeldb.errors.ValidationError` (a ``ValueError``).
    """
    method = resolve(compression, level)
    sections = as_sections(blocks)
    flags = 0
    packed = encode_sections(sections)
    if packed is None:  # the palettes do not pay (noise): store the array as it is
        flags |= FLAG_PLAIN
        packed = sections.reshape(-1).view(np.uint8)
    body = packed.data  # the compressors read the array's memory: no copy
    compressor, payload = compress(body, method)
    header = Header(
        sections.itemsize, flags, compressor, sections.shape[0] * 16, body.nbytes, len(payload)
    )
    return pack_frame(header, payload)


def decode_chunk(
    data: bytes | bytearray | memoryview, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[Any]:
    """Decode bytes made by :func:`encode_chunk` back into a ``(height, 16, 16)`` array.

    Every compressor and every format version is read from the header. With ``out`` (a
    writable C-contiguous array of the chunk's shape and dtype, e.g. a view into a larger
    preallocated region) the blocks are written there and ``out`` is returned: reusing
    memory spares the page faults of a fresh array. If decoding fails, ``out`` may have
    been partly written.
    """
    header, payload = parse_frame(data)
    if out is not None:
        _check_out(out, header)
    # A plain body becomes the result as it is, so ask for one numpy may keep and write to.
    plain = header.plain
    body = decompress(header.compressor, payload, header.body_size, writable=plain and out is None)
    if plain:
        result = np.frombuffer(body, dtype=header.dtype)
        if out is not None:
            out.reshape(-1)[...] = result
            return out
        if body is payload:
            result = result.copy()  # never alias the caller's buffer
    else:
        target = None
        if out is not None and out.dtype == header.dtype:
            target = out.reshape(header.sections, -1)
        result = decode_sections(body, header.sections, header.dtype, target)
        if out is not None:
            if target is None:  # big-endian hosts only
                out.reshape(header.sections, -1)[...] = result
            return out
    if not result.dtype.isnative:  # big-endian hosts only
        result = result.astype(result.dtype.newbyteorder("="))
    return result.reshape(header.height, 16, 16)


def _check_out(out: object, header: Header) -> None:
    shape = (header.height, 16, 16)
    if not isinstance(out, np.ndarray):
        raise ChunkFormatError(f"out must be a numpy array, got {type(out).__name__}")
    if (
        out.shape != shape
        or out.dtype.kind != "u"
        or out.dtype.itemsize != header.dtype_code
        or not out.dtype.isnative
    ):
        raise ChunkFormatError(
            f"out is {out.dtype} {out.shape}, the chunk is {header.dtype.name} {shape}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ChunkFormatError("out must be a writable C-contiguous array")
