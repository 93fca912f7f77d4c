"""The world journal: every committed chunk change, in commit order (docs/journal.md).

The public types (``Change``, ``BlockEdit``, ``RollbackReport``), the compact form of block
edits, :class:`JournalWriter` (the entries of one write transaction, appended as its last
statement), and the functions other packages call on their own connection (the ORM's flush,
snapshot restore): :func:`journal_put`, :func:`journal_edit`, :func:`journal_delete`,
:func:`journal_puts`, :func:`journal_deletes`, :func:`journal_head`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from voxeldb.chunks import _journal_sql as sql
from voxeldb.chunks._journal_sql import EntryRow
from voxeldb.chunks._registry import lookup_states
from voxeldb.errors import ValidationError

__all__ = [
    "DELETE",
    "EDIT",
    "KIND_NAMES",
    "PUT",
    "BlockEdit",
    "Change",
    "JournalWriter",
    "RollbackReport",
    "check_actor",
    "digest",
    "journal_delete",
    "journal_deletes",
    "journal_edit",
    "journal_head",
    "journal_put",
    "journal_puts",
    "pack_edits",
    "unpack_edits",
]

PUT, EDIT, DELETE = 1, 2, 3
KIND_NAMES = {PUT: "put", EDIT: "edit", DELETE: "delete"}
MAX_ACTOR = 200

_ENABLED = True
"""Private switch: False writes no journal (the benchmarks' baseline only)."""
_NAIVE = False
"""Private switch: seqs drawn when a write starts, outside its transaction, like a sequence
(the ordering test's negative control; never for real use)."""


@dataclass(frozen=True, slots=True)
class BlockEdit:
    """One block of an ``"edit"`` change: world coordinates, states before and after."""

    x: int
    y: int
    z: int
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of one chunk (CONTRACT §7)."""

    seq: int
    cx: int
    cz: int
    kind: str
    version: int | None
    actor: str | None
    at: dt.datetime
    blocks: tuple[BlockEdit, ...] = ()


@dataclass(frozen=True, slots=True)
class RollbackReport:
    """What a rollback restored (or, with ``preview=True``, would restore)."""

    blocks: int
    chunks: int
    conflicts: int


def check_actor(actor: object) -> str | None:
    if actor is None:
        return None
    if not isinstance(actor, str):
        raise ValidationError(f"actor must be a string, got {type(actor).__name__}", field="actor")
    if len(actor) > MAX_ACTOR:
        raise ValidationError(
            f"actor must be at most {MAX_ACTOR} characters, got {len(actor)}", field="actor"
        )
    return actor


def digest(data: bytes) -> bytes:
    """The 8-byte fingerprint of a put's bytes (rollback's "still holds what the put wrote")."""
    return hashlib.blake2b(data, digest_size=8).digest()


_U32 = np.dtype("<u4")


def pack_edits(flat: npt.NDArray[Any], old: npt.NDArray[Any], new: npt.NDArray[Any]) -> bytes:
    """Block edits of one chunk as bytes: uint32 flat indexes (``y * 256 + z * 16 + x``,
    local), old ids, new ids; 12 bytes a block."""
    return (
        np.asarray(flat, dtype=_U32).tobytes()
        + np.asarray(old, dtype=_U32).tobytes()
        + np.asarray(new, dtype=_U32).tobytes()
    )


def unpack_edits(
    blob: bytes,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    all_ = np.frombuffer(blob, dtype=_U32)
    n = len(all_) // 3
    return all_[:n], all_[n : 2 * n], all_[2 * n :]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JournalWriter:
    """The entries of one write transaction. :meth:`finish` appends them with their seqs; it
    must be the transaction's last statement (the head row's lock is then held only for the
    commit, and seqs follow commit order)."""

    __slots__ = ("_actor", "_engine", "_entries", "_first", "_reserved", "_staged", "_world_id")

    SPILL = 1024
    """Entries kept in memory before :meth:`spill` parks them in a temporary table."""

    def __init__(self, engine: Engine, world_id: uuid.UUID, actor: str | None) -> None:
        self._engine = engine
        self._world_id = world_id
        self._actor = actor
        self._entries: list[EntryRow] = []
        self._first: int | None = None
        self._reserved = 0
        self._staged = 0

    @staticmethod
    def open(engine: Engine, world_id: uuid.UUID, actor: str | None) -> JournalWriter | None:
        """A writer, or None while the journal is switched off (benchmark baseline)."""
        return JournalWriter(engine, world_id, actor) if _ENABLED else None

    def reserve(self, count: int) -> None:
        """Naive design only (negative control): draw ``count`` seqs now, in a transaction of
        their own, as a sequence would. A no-op otherwise."""
        if not _NAIVE or count <= 0:
            return
        with self._engine.connect() as other:
            conn = other
            if conn.dialect.name == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                last = sql.bump(conn, self._world_id, count, notify=False)
        self._first, self._reserved = last - count + 1, count

    def add(self, entry: EntryRow) -> None:
        self._entries.append(entry)

    def spill(self, conn: Connection) -> None:
        """Park the entries held so far in the transaction's staging table once there are
        many (``put_many``: memory bounded by one batch whatever the call's size)."""
        if len(self._entries) >= self.SPILL and not _NAIVE:
            sql.stage(conn, self._entries, self._staged)
            self._staged += len(self._entries)
            self._entries = []

    def finish(self, conn: Connection) -> int | None:
        """Append the entries (last statement of the transaction); the last seq, or None."""
        total = self._staged + len(self._entries)
        if not total:
            return None
        at = _now()
        if self._staged:
            last = sql.bump(conn, self._world_id, total)
            first = last - total + 1
            sql.unstage(conn, self._world_id, first, self._actor, at)
            if self._entries:
                sql.append(
                    conn, self._world_id, self._entries, self._actor, at,
                    first_seq=first + self._staged,
                )  # fmt: skip
            return last
        if _NAIVE and self._reserved != len(self._entries):
            self.reserve(len(self._entries))
        first_seq = self._first if _NAIVE else None
        return sql.append(conn, self._world_id, self._entries, self._actor, at, first_seq=first_seq)


# ---------------------------------------------------------------- on a caller's connection


def journal_head(conn: Connection, world_id: uuid.UUID) -> int:
    """The newest seq of the world's journal (0 when it has none), on ``conn``."""
    return sql.head(conn, world_id)


def _append(
    conn: Connection, world_id: uuid.UUID, entries: Sequence[EntryRow], actor: str | None
) -> int | None:
    if not _ENABLED or not entries:
        return None
    return sql.append(conn, world_id, entries, check_actor(actor), _now())


def journal_put(
    conn: Connection,
    world_id: uuid.UUID,
    cx: int,
    cz: int,
    version: int,
    data: bytes,
    *,
    prior: bytes | None = None,
    actor: str | None = None,
) -> int | None:
    """Journal a put of ``data`` (version ``version``) made in ``conn``'s transaction; the seq."""
    return _append(
        conn, world_id, [EntryRow(cx, cz, PUT, version, None, prior, digest(data))], actor
    )


def journal_puts(
    conn: Connection,
    world_id: uuid.UUID,
    rows: Iterable[tuple[int, int, int, bytes]],
    *,
    actor: str | None = None,
) -> int | None:
    """Journal puts ``(cx, cz, version, data)`` of chunks that did not exist (a restore)."""
    entries = [EntryRow(x, z, PUT, v, None, None, digest(d)) for x, z, v, d in rows]
    return _append(conn, world_id, entries, actor)


def journal_edit(
    conn: Connection,
    world_id: uuid.UUID,
    cx: int,
    cz: int,
    version: int,
    flat: Sequence[int],
    old: Sequence[int],
    new: Sequence[int],
    *,
    actor: str | None = None,
) -> int | None:
    """Journal block edits of one chunk (local flat indexes, old and new state ids)."""
    blob = pack_edits(np.asarray(flat), np.asarray(old), np.asarray(new))
    return _append(conn, world_id, [EntryRow(cx, cz, EDIT, version, blob, None, None)], actor)


def journal_delete(
    conn: Connection,
    world_id: uuid.UUID,
    cx: int,
    cz: int,
    *,
    prior: bytes | None = None,
    actor: str | None = None,
) -> int | None:
    return _append(conn, world_id, [EntryRow(cx, cz, DELETE, None, None, prior, None)], actor)


def journal_deletes(
    conn: Connection,
    world_id: uuid.UUID,
    keys: Iterable[tuple[int, int]],
    *,
    actor: str | None = None,
) -> int | None:
    """Journal deletes of chunks ``(cx, cz)`` (their bytes before are not kept)."""
    entries = [EntryRow(x, z, DELETE, None, None, None, None) for x, z in keys]
    return _append(conn, world_id, entries, actor)


# ---------------------------------------------------------------- reading


def to_changes(
    conn: Connection, world_id: uuid.UUID, rows: Sequence[tuple[Any, ...]], min_y: int
) -> list[Change]:
    """Rows of :func:`sql.select_entries` as :class:`Change` (states looked up in bulk)."""
    unpacked: dict[int, tuple[Any, Any, Any]] = {}
    ids: set[int] = set()
    for i, row in enumerate(rows):
        if row[7] is not None:
            flat, old, new = unpack_edits(bytes(row[7]))
            unpacked[i] = (flat, old, new)
            ids.update(np.unique(old).tolist())
            ids.update(np.unique(new).tolist())
    states = lookup_states(conn, world_id, sorted(ids)) if ids else {}
    out = []
    for i, row in enumerate(rows):
        seq, at, cx, cz, kind, version, actor = row[:7]
        blocks: tuple[BlockEdit, ...] = ()
        if i in unpacked:
            flat, old, new = unpacked[i]
            xs = (flat & 15).tolist()
            zs = ((flat >> 4) & 15).tolist()
            ys = (flat >> 8).tolist()
            bx, bz = int(cx) * 16, int(cz) * 16
            blocks = tuple(
                BlockEdit(bx + x, min_y + y, bz + z, states[o], states[n])
                for x, y, z, o, n in zip(xs, ys, zs, old.tolist(), new.tolist(), strict=True)
            )
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        out.append(
            Change(
                seq=int(seq),
                cx=int(cx),
                cz=int(cz),
                kind=KIND_NAMES[int(kind)],
                version=None if version is None else int(version),
                actor=actor,
                at=at.astimezone(dt.UTC),
                blocks=blocks,
            )
        )
    return out


def check_area(area: object) -> tuple[int, int, int, int] | None:
    if area is None:
        return None
    try:
        given: list[Any] = list(area)  # type: ignore[call-overload]
    except TypeError:
        given = []
    if len(given) != 4:
        raise ValidationError("area must be (cx0, cz0, cx1, cz1)", field="area")
    values = []
    for v in given:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValidationError("area must hold four integers", field="area")
        values.append(int(v))
    a, b, c, d = values
    if a > c or b > d:
        raise ValidationError("area needs cx0 <= cx1 and cz0 <= cz1", field="area")
    return a, b, c, d


def check_time(value: object, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise ValidationError(f"{field} must be a datetime", field=field)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def iter_changes(
    engine_connect: Any,
    world_id: uuid.UUID,
    min_y: int,
    *,
    since: int,
    page: int = 1000,
    limit: int | None = None,
    **filters: Any,
) -> Iterator[Change]:
    """Lazily, page by page (one short read transaction each)."""
    left = limit
    last = since
    while left is None or left > 0:
        size = page if left is None else min(page, left)
        with engine_connect() as conn:
            rows = sql.select_entries(conn, world_id, since=last, limit=size, **filters)
            changes = to_changes(conn, world_id, rows, min_y)
        yield from changes
        if not changes:
            return
        last = changes[-1].seq
        if left is not None:
            left -= len(changes)
        if len(rows) < size:
            return
