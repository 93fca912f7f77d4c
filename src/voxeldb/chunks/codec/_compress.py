"""The compression step between a chunk's body and its stored payload.

A compressor is named in the header by its ``id``: ``0`` means the payload is the body
itself, ``1`` LZ4 and ``2`` zstd (``docs/chunk-format.md``, "Compressors"). Adding one is a
class with the :class:`Compressor` interface here plus its id in :data:`COMPRESSORS`; readers
reject ids they do not know, so that also takes a new format version.

``encode_chunk(compression=..., level=...)`` names a compressor and an optional level;
:func:`resolve` checks both and raises :class:`~voxeldb.errors.ValidationError` for anything
else, which is also what a store calls to check a world's settings.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final, NamedTuple, Protocol, TypeAlias

import lz4.block
import zstandard

from voxeldb.errors import ChunkFormatError, ValidationError

__all__ = [
    "COMPRESSIONS",
    "COMPRESSORS",
    "DEFAULT",
    "LZ4",
    "MAX_BODY_SIZE",
    "NO_COMPRESSION",
    "ZSTD",
    "Compressor",
    "LZ4Compressor",
    "Method",
    "ZstdCompressor",
    "compress",
    "decompress",
    "resolve",
]

# What the compressors take: the encoder hands over a view of its numpy buffer, no copy.
Body: TypeAlias = bytes | memoryview
# The largest body: a plain array of 4096 x 16 x 16 uint32. Nothing may allocate more.
MAX_BODY_SIZE: Final = 4096 * 256 * 4
# The header id of "not compressed".
NO_COMPRESSION: Final = 0


class Compressor(Protocol):
    """One compression algorithm, as the codec uses it: whole bodies, sizes known."""

    @property
    def id(self) -> int:
        """The header's compressor id of payloads made by this compressor (never 0)."""
        ...

    @property
    def name(self) -> str:
        """The ``compression=`` name, also shown in error messages."""
        ...

    @property
    def levels(self) -> range:
        """The levels ``compression_level`` may take."""
        ...

    def compress(self, body: Body, level: int | None) -> bytes:
        """The compressed body, with no size prefix (the header holds the size)."""
        ...

    def decompress(
        self, payload: bytes | memoryview, size: int, *, writable: bool
    ) -> bytes | bytearray:
        """``size`` bytes (already checked against :data:`MAX_BODY_SIZE`), as a ``bytearray``
        when ``writable``; :class:`ChunkFormatError` if the payload is bad."""
        ...


class LZ4Compressor:
    """The LZ4 block format: fast enough that decoding stays close to a plain copy.

    A level (1-12) selects LZ4's high-compression mode; the output is the same block
    format, so any LZ4 reader reads it.
    """

    id: Final = 1
    name: Final = "lz4"
    levels: Final = range(1, 13)

    def compress(self, body: Body, level: int | None) -> bytes:
        packed: bytes
        if level is None:
            packed = lz4.block.compress(body, store_size=False)
        else:
            packed = lz4.block.compress(
                body, mode="high_compression", compression=level, store_size=False
            )
        return packed

    def decompress(
        self, payload: bytes | memoryview, size: int, *, writable: bool
    ) -> bytes | bytearray:
        try:
            # LZ4 allocates ``size`` bytes up front, hence the bound checked by the caller.
            body: bytes | bytearray = lz4.block.decompress(
                payload, uncompressed_size=size, return_bytearray=writable
            )
        except lz4.block.LZ4BlockError as exc:
            raise ChunkFormatError(
                f"corrupted chunk: LZ4 payload does not decompress ({exc})"
            ) from None
        return body


class ZstdCompressor:
    """Zstandard (RFC 8878): one frame per payload, its content size recorded, no checksum
    (the chunk's CRC-32 covers it) and no dictionary.

    Smaller than LZ4 (below Anvil's zlib on real chunks) at a small decode cost; levels
    1-22, 3 by default. zstandard's contexts are not thread-safe, so each thread keeps its
    own, one compressor per level and one decompressor.
    """

    id: Final = 2
    name: Final = "zstd"
    levels: Final = range(1, 23)
    default_level: Final = 3

    def __init__(self) -> None:
        self._local = threading.local()

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        by_level: dict[int, zstandard.ZstdCompressor] | None = getattr(
            self._local, "compressors", None
        )
        if by_level is None:
            by_level = self._local.compressors = {}
        ctx = by_level.get(level)
        if ctx is None:
            ctx = by_level[level] = zstandard.ZstdCompressor(
                level=level, write_checksum=False, write_content_size=True, write_dict_id=False
            )
        return ctx

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        ctx: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if ctx is None:
            ctx = self._local.decompressor = zstandard.ZstdDecompressor()
        return ctx

    def compress(self, body: Body, level: int | None) -> bytes:
        return self._compressor(self.default_level if level is None else level).compress(body)

    def decompress(
        self, payload: bytes | memoryview, size: int, *, writable: bool
    ) -> bytes | bytearray:
        # The frame's own content size decides what zstandard allocates: check it first.
        try:
            declared = zstandard.frame_content_size(payload)
        except zstandard.ZstdError as exc:
            raise ChunkFormatError(f"corrupted chunk: not a zstd frame ({exc})") from None
        if declared != size:
            raise ChunkFormatError(
                f"corrupt chunk: zstd frame declares {declared} bytes, header says {size}"
            )
        try:
            body = self._decompressor().decompress(
                payload, max_output_size=size, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise ChunkFormatError(
                f"corrupted chunk: zstd payload does not decompress ({exc})"
            ) from None
        return bytearray(body) if writable else body


LZ4: Final = LZ4Compressor()
ZSTD: Final = ZstdCompressor()
COMPRESSORS: Final[Mapping[int, Compressor]] = {LZ4.id: LZ4, ZSTD.id: ZSTD}
_BY_NAME: Final[Mapping[str, Compressor]] = {c.name: c for c in COMPRESSORS.values()}
# The names ``encode_chunk(compression=...)`` and a world's settings accept.
COMPRESSIONS: Final = ("lz4", "zstd", "none")


class Method(NamedTuple):
    """A checked ``compression=`` / ``level=`` pair."""

    compressor: Compressor | None  # None: "none"
    level: int | None


def resolve(compression: object, level: object = None) -> Method:
    """Check a compression name and level; :class:`ValidationError` (a ValueError) if bad."""
    if level is None and type(compression) is str:
        known = _PLAIN_METHODS.get(compression)
        if known is not None:
            return known
    if compression == "none" and isinstance(compression, str):
        if level is not None:
            raise ValidationError(
                f"compression 'none' takes no level, got {level!r}", field="compression_level"
            )
        return Method(None, None)
    compressor = _BY_NAME.get(compression) if isinstance(compression, str) else None
    if compressor is None:
        raise ValidationError(
            f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}",
            field="compression",
        )
    if level is None:
        return Method(compressor, None)
    levels = compressor.levels
    if isinstance(level, bool) or not isinstance(level, int) or level not in levels:
        raise ValidationError(
            f"{compressor.name} level must be an integer from {levels.start} to "
            f"{levels.stop - 1}, got {level!r}",
            field="compression_level",
        )
    return Method(compressor, level)


DEFAULT: Final = Method(LZ4, None)
# The methods without a level, the common case, checked once.
_PLAIN_METHODS: Final[Mapping[str, Method]] = {
    "lz4": DEFAULT,
    "zstd": Method(ZSTD, None),
    "none": Method(None, None),
}


def compress(body: Body, method: Method = DEFAULT) -> tuple[int, Body]:
    """The header's compressor id and the payload: compressed only where that is smaller."""
    compressor = method.compressor
    if compressor is not None:
        packed = compressor.compress(body, method.level)
        if len(packed) < len(body):
            return compressor.id, packed
    return NO_COMPRESSION, body


def decompress(
    compressor_id: int, payload: memoryview, body_size: int, *, writable: bool
) -> bytes | bytearray | memoryview:
    """The body of a payload, given the header's compressor id and body size.

    With no compressor the payload itself is returned (a view of the caller's buffer).
    ``writable`` asks a compressor for a ``bytearray`` so the caller need not copy it.
    """
    if compressor_id == NO_COMPRESSION:
        if len(payload) != body_size:
            raise ChunkFormatError(
                f"corrupt chunk: uncompressed payload of {len(payload)} bytes, "
                f"header says {body_size}"
            )
        return payload
    compressor = COMPRESSORS.get(compressor_id)
    if compressor is None:
        raise ChunkFormatError(f"corrupt chunk header: unknown compressor id {compressor_id}")
    if len(payload) >= body_size:
        raise ChunkFormatError(
            f"corrupt chunk: {_shown(compressor)} payload that is not smaller than its body"
        )
    if body_size > MAX_BODY_SIZE:
        raise ChunkFormatError(
            f"corrupt chunk: declared body size {body_size} is past the limit {MAX_BODY_SIZE}"
        )
    body = compressor.decompress(payload, body_size, writable=writable)
    if len(body) != body_size:
        raise ChunkFormatError(
            f"corrupt chunk: {_shown(compressor)} payload gives {len(body)} bytes, "
            f"header says {body_size}"
        )
    return body


def _shown(compressor: Compressor) -> str:
    return compressor.name.upper() if compressor is LZ4 else compressor.name
