"""The snapshot file: its constants, the chunk record framing, and the checked reader.

A zip archive holding ``manifest.json`` (format, world, counts, the SHA-256 and size of every
other member), ``tables/<table>.json`` and ``chunks.bin`` (``b"VXCHUNKS"``, then per chunk
``<iiqII`` = cx, cz, version, len(data), len(metadata JSON), the data and the metadata JSON).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from voxeldb.errors import SnapshotError

__all__ = [
    "BATCH",
    "CHUNKS_MEMBER",
    "CHUNK_MAGIC",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "RECORD",
    "SUFFIX",
    "HashingWriter",
    "SnapshotReader",
    "read_manifest",
    "zip_time",
]

FORMAT = "voxeldb-world-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS_MEMBER = "chunks.bin"
SUFFIX = ".vxsnap"
CHUNK_MAGIC = b"VXCHUNKS"
RECORD = struct.Struct("<iiqII")
BATCH = 256
"""Rows per insert and chunks per progress call, on both sides."""
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
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
        if info.file_size > _MAX_MANIFEST_BYTES:
            raise self.fail(f"{MANIFEST} declares {info.file_size} bytes, past the limit")
        try:
            raw = self.zf.read(MANIFEST)
            manifest = json.loads(raw)
        except (*_ZIP_ERRORS, ValueError) as exc:
            raise self.fail(f"{MANIFEST} cannot be read: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise SnapshotError(f"snapshot {self.path}: {MANIFEST} is not a {FORMAT} manifest")
        fv = manifest.get("format_version")
        if fv != FORMAT_VERSION:
            raise SnapshotError(
                f"snapshot {self.path} has format version {fv!r}; this voxeldb reads version "
                f"{FORMAT_VERSION}"
            )
        try:
            members = manifest["members"]
            world = manifest["world"]
            uuid.UUID(str(world["id"]))
            str(world["name"])
            for entry in manifest["tables"]:
                if entry["member"] not in members:
                    raise KeyError(entry["member"])
            for name, meta in members.items():
                if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("size"), int):
                    raise KeyError(name)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.fail(f"{MANIFEST} is incomplete or malformed ({exc!r})") from None
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

    def read_member(self, name: str) -> bytes:
        meta = self.manifest["members"][name]
        try:
            data = self.zf.read(name)
        except _ZIP_ERRORS as exc:
            raise self.fail(f"member {name} cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise self.fail(f"member {name} does not match its SHA-256 in the manifest")
        return data

    def table(self, name: str) -> dict[str, Any]:
        member = f"tables/{name}.json"
        raw = self.read_member(member)
        try:
            payload = json.loads(raw)
            if not isinstance(payload["columns"], list) or not isinstance(payload["rows"], list):
                raise TypeError("columns/rows are not lists")
        except (ValueError, KeyError, TypeError) as exc:
            raise self.fail(f"member {member} is malformed: {exc}") from None
        return payload  # type: ignore[no-any-return]

    def chunk_records(self) -> Iterator[tuple[int, int, int, bytes, Any]]:
        """Every chunk record, hashing as it goes; a mismatch raises after the last record."""
        meta = self.manifest["members"][CHUNKS_MEMBER]
        sha = hashlib.sha256()
        try:
            with self.zf.open(CHUNKS_MEMBER) as fh:
                reader = fh  # ZipExtFile buffers, and read(n) returns n bytes until the end

                def take(n: int) -> bytes:
                    data = reader.read(n)
                    if len(data) != n:
                        raise self.fail(f"member {CHUNKS_MEMBER} ends inside a record")
                    sha.update(data)
                    return data

                if take(len(CHUNK_MAGIC)) != CHUNK_MAGIC:
                    raise self.fail(f"member {CHUNKS_MEMBER} does not start with its magic")
                while True:
                    head = reader.read(RECORD.size)
                    if not head:
                        break
                    if len(head) != RECORD.size:
                        raise self.fail(f"member {CHUNKS_MEMBER} ends inside a record header")
                    sha.update(head)
                    cx, cz, version, n_data, n_meta = RECORD.unpack(head)
                    if n_data > meta["size"] or n_meta > meta["size"]:
                        raise self.fail(f"chunk ({cx}, {cz}) declares a size past the member")
                    data = take(n_data)
                    chunk_meta = json.loads(take(n_meta)) if n_meta else None
                    yield cx, cz, version, data, chunk_meta
        except SnapshotError:
            raise
        except (*_ZIP_ERRORS, ValueError) as exc:
            raise self.fail(f"member {CHUNKS_MEMBER} cannot be read: {exc}") from None
        if sha.hexdigest() != meta["sha256"]:
            raise self.fail(f"member {CHUNKS_MEMBER} does not match its SHA-256 in the manifest")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of the snapshot at ``path`` (members are not verified)."""
    with SnapshotReader(Path(path)) as snap:
        return dict(snap.manifest)
