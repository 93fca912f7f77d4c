"""The snapshot file: its constants, the chunk record framing, and the checked reader.

Why over 500 lines: the writer's framing, the streaming reader and the manifest's one
checker must agree byte for byte, and keeping them side by side is how they stay agreed.

A zip archive holding ``manifest.json`` (format, world, counts, the SHA-256 and size of every
other member), ``tables/<table>.json`` and ``chunks.bin`` (``b"VXCHUNKS"``, then per chunk
``<iiqII`` = cx, cz, version, len(data), len(metadata JSON), the data and the metadata JSON).

An *increment* (``voxeldb snapshot create --since SEQ``) is the same archive under another
format name (:data:`INCREMENT_FORMAT`, so a voxeldb that predates increments refuses it rather
than restoring it as a whole world): its manifest's ``increment`` names the journal range
``(since, head]`` it covers, ``chunks.bin`` holds only the chunks changed in it, and
``deleted.bin`` (``b"VXDELETE"``, then ``<ii`` = cx, cz per chunk) the chunks deleted in it.

A snapshot may come from anywhere, so the reader trusts nothing in it. The manifest's
structure is checked in one place (:func:`check_manifest`): a missing or wrong-typed field is
a SnapshotError naming it. Every member is bounded before a byte of it is read, by what it
should hold (the limits below, docs/operations.md), and read as a stream: ``chunks.bin``
record by record (each record bounded by the world's height), a table row by row (each row
bounded), so memory stays flat whatever a member declares or holds.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import os
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from voxeldb.chunks import MAX_HEIGHT
from voxeldb.errors import SnapshotError

__all__ = [
    "BATCH",
    "BATCH_BYTES",
    "CHUNKS_MEMBER",
    "CHUNK_MAGIC",
    "DELETED_MAGIC",
    "DELETED_MEMBER",
    "DELETED_RECORD",
    "FORMAT",
    "FORMAT_VERSION",
    "INCREMENT_FORMAT",
    "MANIFEST",
    "MAX_CHUNK_METADATA_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_ROW_BYTES",
    "RECORD",
    "SUFFIX",
    "HashingWriter",
    "SnapshotReader",
    "TableMember",
    "check_manifest",
    "max_chunk_bytes",
    "read_manifest",
    "zip_time",
]

FORMAT = "voxeldb-world-snapshot"
INCREMENT_FORMAT = "voxeldb-world-increment"
"""The format name of an increment: the chunks changed (and deleted) after a journal seq."""
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS_MEMBER = "chunks.bin"
DELETED_MEMBER = "deleted.bin"
SUFFIX = ".vxsnap"
CHUNK_MAGIC = b"VXCHUNKS"
DELETED_MAGIC = b"VXDELETE"
RECORD = struct.Struct("<iiqII")
DELETED_RECORD = struct.Struct("<ii")
BATCH = 256
"""Rows per insert and chunks per progress call, on both sides."""
BATCH_BYTES = 16 * 1024 * 1024
"""A batch of chunks is written once it holds this many bytes, even if shorter than BATCH."""

MAX_MANIFEST_BYTES = 1024 * 1024
"""``manifest.json`` is a few KiB: a counts table and one line per member."""
MAX_ROW_BYTES = 4 * 1024 * 1024
"""One row of a table as JSON (the services cap each JSON value at about 256 KiB)."""
MAX_TABLE_HEAD_BYTES = 64 * 1024
"""A table member without its rows: its name, role and column names."""
MAX_CHUNK_METADATA_BYTES = 1024 * 1024
"""One chunk's ``chunk_metadata`` as JSON."""
_READ = 64 * 1024
_HEX = frozenset("0123456789abcdef")


def max_chunk_bytes(height: int) -> int:
    """The most bytes the codec makes of one chunk of a world ``height`` blocks high: 4-byte
    blocks uncompressed, LZ4's worst-case growth, and 64 KiB for the header and palettes."""
    raw = height * 16 * 16 * 4
    return raw + raw // 255 + 64 * 1024


def max_table_bytes(rows: int) -> int:
    """The most bytes a table member of ``rows`` rows may declare."""
    return MAX_TABLE_HEAD_BYTES + rows * (MAX_ROW_BYTES + 1)


def max_chunks_member_bytes(chunks: int, height: int) -> int:
    """The most bytes ``chunks.bin`` of ``chunks`` chunks of a world ``height`` high may declare."""
    per_record = RECORD.size + max_chunk_bytes(height) + MAX_CHUNK_METADATA_BYTES
    return len(CHUNK_MAGIC) + chunks * per_record


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, KeyError)


class HashingWriter:
    """Writes through to ``out``, keeping the SHA-256 and size of what went by."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)


def zip_time() -> tuple[int, int, int, int, int, int]:
    now = dt.datetime.now(dt.UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


def check_manifest(manifest: object, fail: Callable[[str], SnapshotError]) -> dict[str, Any]:
    """``manifest`` if it has every field of a format-1 manifest with the right type, else
    ``fail("manifest.json field <name> ...")`` for the first field that is missing or wrong.

    The one place a manifest's structure is checked: everything after it may index the
    manifest without guarding. Fields the reader does not use (``created_at``, ``source``,
    ``voxeldb_version``, ``redacted_columns``) are not required.
    """

    def bad(field: str, what: str) -> SnapshotError:
        return fail(f"{MANIFEST} field {field} {what}")

    def get(obj: dict[str, Any], key: str, field: str, kind: type, *, required: bool = True) -> Any:
        if key not in obj:
            if required:
                raise bad(field, "is missing")
            return None
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad(field, f"must be {_KIND_NAMES[kind]}, not {type(value).__name__}")
        return value

    if not isinstance(manifest, dict):
        raise bad("(the whole manifest)", "must be a JSON object")
    world = get(manifest, "world", "world", dict)
    try:
        uuid.UUID(get(world, "id", "world.id", str))
    except ValueError:
        raise bad("world.id", "is not a UUID") from None
    name = get(world, "name", "world.name", str)
    if not name.strip():
        raise bad("world.name", "is empty")
    height = get(world, "height", "world.height", int, required=False)
    if height is not None and not (0 < height <= MAX_HEIGHT and height % 16 == 0):
        raise bad("world.height", f"must be a positive multiple of 16 up to {MAX_HEIGHT}")
    get(world, "min_y", "world.min_y", int, required=False)

    counts = get(manifest, "counts", "counts", dict)
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"counts.{key}", "must be a non-negative integer")
    get(counts, "world_chunks", "counts.world_chunks", int)

    members = get(manifest, "members", "members", dict)
    for member, meta in members.items():
        if not isinstance(meta, dict):
            raise bad(f"members[{member!r}]", "must be an object with sha256 and size")
        sha = get(meta, "sha256", f"members[{member!r}].sha256", str)
        if len(sha) != 64 or not set(sha) <= _HEX:
            raise bad(f"members[{member!r}].sha256", "is not a SHA-256 in hex")
        if get(meta, "size", f"members[{member!r}].size", int) < 0:
            raise bad(f"members[{member!r}].size", "is negative")
    if CHUNKS_MEMBER not in members:
        raise bad(f"members[{CHUNKS_MEMBER!r}]", "is missing")

    tables = get(manifest, "tables", "tables", list)
    seen: set[str] = set()
    for i, entry in enumerate(tables):
        where = f"tables[{i}]"
        if not isinstance(entry, dict):
            raise bad(where, "must be an object with table, role and member")
        table = get(entry, "table", f"{where}.table", str)
        if table in seen:
            raise bad(f"{where}.table", f"names {table!r} a second time")
        seen.add(table)
        if get(entry, "role", f"{where}.role", str) not in ("owned", "reference"):
            raise bad(f"{where}.role", "must be 'owned' or 'reference'")
        member = get(entry, "member", f"{where}.member", str)
        if member != f"tables/{table}.json" or member not in members:
            raise bad(f"{where}.member", f"must be tables/{table}.json, listed under members")
        get(counts, table, f"counts.{table}", int)
    if "worlds" not in seen:
        raise bad("tables", "has no entry for the worlds table")

    journal = get(manifest, "journal", "journal", dict, required=False)
    if journal is not None and get(journal, "head", "journal.head", int) < 0:
        raise bad("journal.head", "is negative")
    if manifest.get("format") == INCREMENT_FORMAT:
        increment = get(manifest, "increment", "increment", dict)
        since = get(increment, "since", "increment.since", int)
        head = get(increment, "head", "increment.head", int)
        if since < 0 or head < since:
            raise bad("increment", f"must have 0 <= since <= head, not since {since}, head {head}")
        deleted = get(counts, "deleted_chunks", "counts.deleted_chunks", int)
        if DELETED_MEMBER not in members:
            raise bad(f"members[{DELETED_MEMBER!r}]", "is missing")
        size = len(DELETED_MAGIC) + deleted * DELETED_RECORD.size
        if members[DELETED_MEMBER]["size"] != size:
            raise bad(
                f"members[{DELETED_MEMBER!r}].size",
                f"is {members[DELETED_MEMBER]['size']} bytes, not the {size} of {deleted} "
                "deleted chunks",
            )

    # What each member may declare, by what it should hold (docs/operations.md).
    for entry in tables:
        limit = max_table_bytes(counts[entry["table"]])
        if members[entry["member"]]["size"] > limit:
            raise bad(
                f"members[{entry['member']!r}].size",
                f"is {members[entry['member']]['size']} bytes, past the limit of {limit} for "
                f"{counts[entry['table']]} rows",
            )
    limit = max_chunks_member_bytes(counts["world_chunks"], height or MAX_HEIGHT)
    if members[CHUNKS_MEMBER]["size"] > limit:
        raise bad(
            f"members[{CHUNKS_MEMBER!r}].size",
            f"is {members[CHUNKS_MEMBER]['size']} bytes, past the limit of {limit} for "
            f"{counts['world_chunks']} chunks",
        )
    return manifest


_KIND_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
}


class _MemberStream:
    """A member read piecewise: counts and hashes what goes by, checks both at the end."""

    def __init__(self, reader: SnapshotReader, name: str) -> None:
        self.reader = reader
        self.name = name
        self.meta = reader.manifest["members"][name]
        self.sha = hashlib.sha256()
        self.size = 0
        try:
            self.fh: IO[bytes] = reader.zf.open(name)
        except _ZIP_ERRORS as exc:
            raise reader.fail(f"member {name} cannot be read: {exc}") from None

    def read(self, n: int) -> bytes:
        try:
            data = self.fh.read(n)
        except _ZIP_ERRORS as exc:
            raise self.reader.fail(f"member {self.name} cannot be read: {exc}") from None
        self.sha.update(data)
        self.size += len(data)
        if self.size > self.meta["size"]:  # pragma: no cover - zipfile stops at the declared size
            raise self.reader.fail(f"member {self.name} holds more than its declared size")
        return data

    def finish(self) -> None:
        """Read to the end (nothing may follow), then check the size and the SHA-256."""
        if self.read(1):
            raise self.reader.fail(f"member {self.name} has bytes after its end")
        self.fh.close()
        if self.size != self.meta["size"]:
            raise self.reader.fail(
                f"member {self.name} holds {self.size} bytes, the manifest says {self.meta['size']}"
            )
        if self.sha.hexdigest() != self.meta["sha256"]:
            raise self.reader.fail(f"member {self.name} does not match its SHA-256 in the manifest")

    def close(self) -> None:
        self.fh.close()


class TableMember:
    """``tables/<name>.json`` read as a stream: its columns at once, its rows one by one.

    The member is the JSON object the writer makes (``table``, ``role``, ``columns``, then
    ``rows`` last); each value is parsed from a bounded buffer, so a row longer than
    :data:`MAX_ROW_BYTES` (or a header longer than :data:`MAX_TABLE_HEAD_BYTES`) is refused
    without being held.
    """

    def __init__(self, reader: SnapshotReader, name: str) -> None:
        self.name = name
        self.member = f"tables/{name}.json"
        self.expected_rows: int = reader.manifest["counts"][name]
        self._reader = reader
        self._stream = _MemberStream(reader, self.member)
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self.columns: list[str] = []
        try:
            self._read_head()
        except BaseException:
            self._stream.close()
            raise

    def fail(self, what: str) -> SnapshotError:
        return self._reader.fail(f"member {self.member} is malformed: {what}")

    def close(self) -> None:
        self._stream.close()

    # -- a bounded JSON tokenizer ---------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._stream.read(_READ)
        try:
            text = self._text.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self.fail(f"not UTF-8 ({exc})") from None
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        self._eof = not data
        return True

    def _peek(self) -> str:
        """The next character that is not white space ('' at the end of the member)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            self._buf, self._pos = "", 0
            if not self._fill():
                return ""

    def _expect(self, char: str) -> None:
        got = self._peek()
        if got != char:
            raise self.fail(f"expected {char!r}, found {got[:1]!r}")
        self._pos += 1

    def _value(self, limit: int, what: str) -> Any:
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except ValueError:
                value, end = None, -1
            # A value that ends where the buffer ends may go on (a number): read more first.
            if end != -1 and (end < len(self._buf) or self._eof):
                self._pos = end
                return value
            if len(self._buf) - self._pos > limit:
                raise self.fail(f"{what} is longer than {limit} bytes")
            if not self._fill():
                raise self.fail(f"{what} is not valid JSON")

    # -- the member -----------------------------------------------------------------------

    def _read_head(self) -> None:
        self._expect("{")
        while True:
            key = self._value(MAX_TABLE_HEAD_BYTES, "a key")
            self._expect(":")
            if key == "rows":
                break
            value = self._value(MAX_TABLE_HEAD_BYTES, f"the value of {key!r}")
            if key == "columns":
                if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                    raise self.fail("columns is not a list of names")
                self.columns = value
            elif key == "table" and value != self.name:
                raise self.fail(f"it holds table {value!r}")
            self._expect(",")
        if not self.columns:
            raise self.fail("no columns before the rows")
        self._expect("[")

    def rows(self) -> Iterator[list[Any]]:
        """Every row (a list with one value per column); checks the member's size, SHA-256
        and row count after the last one."""
        n = 0
        try:
            if self._peek() == "]":
                self._pos += 1
            else:
                while True:
                    row = self._value(MAX_ROW_BYTES, f"row {n + 1}")
                    if not isinstance(row, list) or len(row) != len(self.columns):
                        raise self.fail(f"row {n + 1} does not have {len(self.columns)} values")
                    n += 1
                    if n > self.expected_rows:
                        raise self.fail(f"it holds more than the {self.expected_rows} rows counted")
                    yield row
                    sep = self._peek()
                    self._pos += 1
                    if sep == "]":
                        break
                    if sep != ",":
                        raise self.fail(f"expected ',' or ']' after row {n}")
            self._expect("}")
            if self._peek() != "":
                raise self.fail("data after the end of the object")
            if n != self.expected_rows:
                raise self.fail(f"it holds {n} rows, the manifest counts {self.expected_rows}")
            self._stream.finish()
        finally:
            self._stream.close()


class SnapshotReader:
    """An opened snapshot whose manifest has been checked; members are verified as read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise SnapshotError(f"snapshot {path} does not exist")
        if not path.is_file():
            raise SnapshotError(f"snapshot {path} is not a file")
        try:
            self.zf = zipfile.ZipFile(path, "r")
        except _ZIP_ERRORS as exc:
            raise SnapshotError(
                f"snapshot {path} is not a readable snapshot archive (truncated or not a "
                f"voxeldb snapshot): {exc}"
            ) from None
        try:
            self.manifest = self._read_manifest()
        except BaseException:
            self.zf.close()
            raise

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, what: str) -> SnapshotError:
        return SnapshotError(f"snapshot {self.path} is corrupt: {what}")

    def _read_manifest(self) -> dict[str, Any]:
        try:
            info = self.zf.getinfo(MANIFEST)
        except KeyError:
            raise SnapshotError(
                f"snapshot {self.path} has no {MANIFEST}: not a voxeldb world snapshot"
            ) from None
        if info.file_size > MAX_MANIFEST_BYTES:
            raise self.fail(f"{MANIFEST} declares {info.file_size} bytes, past the limit")
        try:
            with self.zf.open(MANIFEST) as fh:
                raw = fh.read(MAX_MANIFEST_BYTES + 1)
            if len(raw) > MAX_MANIFEST_BYTES:  # pragma: no cover - zipfile stops at file_size
                raise ValueError("longer than its declared size")
            manifest = json.loads(raw)
        except (*_ZIP_ERRORS, ValueError, RecursionError) as exc:
            raise self.fail(f"{MANIFEST} cannot be read: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") not in (
            FORMAT,
            INCREMENT_FORMAT,
        ):
            raise SnapshotError(f"snapshot {self.path}: {MANIFEST} is not a {FORMAT} manifest")
        fv = manifest.get("format_version")
        if fv != FORMAT_VERSION or isinstance(fv, bool):
            raise SnapshotError(
                f"snapshot {self.path} has format version {fv!r}; this voxeldb reads version "
                f"{FORMAT_VERSION}"
            )
        manifest = check_manifest(manifest, self.fail)
        members = manifest["members"]
        names = set(self.zf.namelist())
        missing = sorted(set(members) - names)
        if missing:
            raise self.fail(f"member(s) {', '.join(missing)} listed in the manifest are missing")
        for name, meta in members.items():
            if self.zf.getinfo(name).file_size != meta["size"]:
                raise self.fail(
                    f"member {name} holds {self.zf.getinfo(name).file_size} bytes, the "
                    f"manifest says {meta['size']}"
                )
        return manifest

    @property
    def increment(self) -> dict[str, int] | None:
        """``{"since": ..., "head": ...}`` of an increment, None for a whole world."""
        if self.manifest["format"] != INCREMENT_FORMAT:
            return None
        return dict(self.manifest["increment"])

    def deleted_chunks(self) -> list[tuple[int, int]]:
        """The chunks an increment deleted (its size was checked against its count by the
        manifest check); the member's SHA-256 is checked too."""
        stream = _MemberStream(self, DELETED_MEMBER)
        try:
            if stream.read(len(DELETED_MAGIC)) != DELETED_MAGIC:
                raise self.fail(f"member {DELETED_MEMBER} does not start with its magic")
            keys: list[tuple[int, int]] = []
            for _ in range(self.manifest["counts"]["deleted_chunks"]):
                head = stream.read(DELETED_RECORD.size)
                if len(head) != DELETED_RECORD.size:
                    raise self.fail(f"member {DELETED_MEMBER} ends inside a record")
                cx, cz = DELETED_RECORD.unpack(head)
                keys.append((cx, cz))
            stream.finish()
            return keys
        finally:
            stream.close()

    def table(self, name: str) -> TableMember:
        """The table member of ``name``, opened: its columns read, its rows to come."""
        return TableMember(self, name)

    def chunk_records(self, height: int) -> Iterator[tuple[int, int, int, bytes, Any]]:
        """Every chunk record, one at a time, each bounded by ``height``; the member's size
        and SHA-256 are checked after the last record."""
        limit = max_chunk_bytes(height)
        stream = _MemberStream(self, CHUNKS_MEMBER)
        try:

            def take(n: int) -> bytes:
                data = stream.read(n)
                if len(data) != n:
                    raise self.fail(f"member {CHUNKS_MEMBER} ends inside a record")
                return data

            if take(len(CHUNK_MAGIC)) != CHUNK_MAGIC:
                raise self.fail(f"member {CHUNKS_MEMBER} does not start with its magic")
            while True:
                head = stream.read(RECORD.size)
                if not head:
                    break
                if len(head) != RECORD.size:
                    raise self.fail(f"member {CHUNKS_MEMBER} ends inside a record header")
                cx, cz, version, n_data, n_meta = RECORD.unpack(head)
                if n_data > limit:
                    raise self.fail(
                        f"chunk ({cx}, {cz}) declares {n_data} bytes, past the limit of {limit} "
                        f"for a world {height} blocks high"
                    )
                if n_meta > MAX_CHUNK_METADATA_BYTES:
                    raise self.fail(
                        f"chunk ({cx}, {cz}) declares {n_meta} bytes of metadata, past the "
                        f"limit of {MAX_CHUNK_METADATA_BYTES}"
                    )
                data = take(n_data)
                try:
                    chunk_meta = json.loads(take(n_meta)) if n_meta else None
                except (ValueError, RecursionError) as exc:
                    raise self.fail(f"chunk ({cx}, {cz}) has malformed metadata: {exc}") from None
                yield cx, cz, version, data, chunk_meta
            stream.finish()
        except struct.error as exc:  # pragma: no cover - sizes are checked above
            raise self.fail(f"member {CHUNKS_MEMBER} cannot be read: {exc}") from None
        finally:
            stream.close()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of the snapshot at ``path`` (members are not verified)."""
    with SnapshotReader(Path(path)) as snap:
        return dict(snap.manifest)
