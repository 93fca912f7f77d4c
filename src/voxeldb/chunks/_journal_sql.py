"""The journal's SQL, per database: append (head bump + entries), reads, partitions, prune.

Statements run on the raw driver connection underneath the SQLAlchemy ``Connection`` (the
write's own transaction), like the backends'. docs/journal.md explains the design; the one
rule this module keeps: **the head bump is the last statement of a write transaction**, and
the entries get their seqs from it, so seqs are handed out in the order the writers reach
their commit while holding the head row's lock, which is commit order.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from voxeldb.chunks._schema import (
    JOURNAL_PARTITION_PREFIX,
    journal_heads_table,
    world_journal_table,
)

__all__ = [
    "CHANNEL",
    "EntryRow",
    "append",
    "create_partitions",
    "head",
    "prune",
    "select_entries",
]

CHANNEL = "voxeldb_journal"
"""The PostgreSQL NOTIFY channel; the payload is ``<world hex>:<seq>``."""

_J = world_journal_table.name
_H = journal_heads_table.name
_COLUMNS = "world_id, seq, logged_at, chunk_x, chunk_z, kind, version, actor, edits, prior, digest"
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""SQLAlchemy's storage format of a DateTime on SQLite (UTC, no zone), so ranges compare."""

_COPY_OVER = 64
"""Appends of more entries than this go by COPY (PostgreSQL)."""


class EntryRow(NamedTuple):
    """One journal entry before it has a seq."""

    cx: int
    cz: int
    kind: int
    version: int | None
    edits: bytes | None
    prior: bytes | None
    digest: bytes | None


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _raw(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _wid(conn: Connection, world_id: uuid.UUID) -> Any:
    return world_id if _is_pg(conn) else world_id.hex


def sqlite_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime(_SQLITE_TIME)


def parse_sqlite_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, _SQLITE_TIME).replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- append

_PG_BUMP = (
    f"INSERT INTO {_H} (world_id, seq) VALUES (%s, %s) ON CONFLICT (world_id) "
    f"DO UPDATE SET seq = {_H}.seq + EXCLUDED.seq RETURNING seq"
)
_PG_BUMP_NOTIFY = (
    f"WITH h AS ({_PG_BUMP}) SELECT h.seq FROM h, "
    f"LATERAL (SELECT pg_notify('{CHANNEL}', %s || ':' || h.seq)) AS n"
)
_PG_APPEND = (
    f"WITH h AS ({_PG_BUMP}), "
    f"i AS (INSERT INTO {_J} ({_COLUMNS}) "
    "SELECT %s, h.seq - %s + u.o, %s, u.x, u.z, u.k, u.v, %s, u.e, u.p, u.d FROM h, "
    "unnest(%s::int4[], %s::int4[], %s::int2[], %s::int8[], %b::bytea[], %b::bytea[], "
    "%b::bytea[]) WITH ORDINALITY AS u(x, z, k, v, e, p, d, o)) "
    f"SELECT h.seq FROM h, LATERAL (SELECT pg_notify('{CHANNEL}', %s || ':' || h.seq)) AS n"
)
_PG_INSERT = (
    f"INSERT INTO {_J} ({_COLUMNS}) "
    "SELECT %s, %s - 1 + u.o, %s, u.x, u.z, u.k, u.v, %s, u.e, u.p, u.d FROM "
    "unnest(%s::int4[], %s::int4[], %s::int2[], %s::int8[], %b::bytea[], %b::bytea[], "
    "%b::bytea[]) WITH ORDINALITY AS u(x, z, k, v, e, p, d, o)"
)
_PG_COPY = f"COPY {_J} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_PG_COPY_TYPES = [
    "uuid", "int8", "timestamptz", "int4", "int4", "int2", "int8", "text", "bytea", "bytea",
    "bytea",
]  # fmt: skip
_SQLITE_BUMP = (
    f"INSERT INTO {_H} (world_id, seq) VALUES (?, ?) ON CONFLICT (world_id) "
    "DO UPDATE SET seq = seq + excluded.seq RETURNING seq"
)
_SQLITE_INSERT = f"INSERT INTO {_J} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _arrays(entries: Sequence[EntryRow]) -> list[list[Any]]:
    return [[e[i] for e in entries] for i in range(7)]


def bump(conn: Connection, world_id: uuid.UUID, count: int, *, notify: bool = True) -> int:
    """Add ``count`` to the world's head (creating it); the new head. Holds the head row's
    lock until the transaction ends."""
    if _is_pg(conn):
        with _raw(conn).cursor() as cur:
            if notify:
                cur.execute(_PG_BUMP_NOTIFY, (world_id, count, world_id.hex))
            else:
                cur.execute(_PG_BUMP, (world_id, count))
            return int(cur.fetchone()[0])
    cur = _raw(conn).execute(_SQLITE_BUMP, (world_id.hex, count))
    last = int(cur.fetchone()[0])
    cur.close()
    return last


def append(
    conn: Connection,
    world_id: uuid.UUID,
    entries: Sequence[EntryRow],
    actor: str | None,
    at: dt.datetime,
    *,
    first_seq: int | None = None,
) -> int:
    """Give ``entries`` the next seqs of the world (the head bump: call it last in the
    transaction) and insert them; the last seq. With ``first_seq`` the seqs were drawn
    already (the naive design of the negative control): only the insert is done."""
    n = len(entries)
    if not n:
        return head(conn, world_id)
    if _is_pg(conn):
        raw = _raw(conn)
        if first_seq is None and n <= _COPY_OVER:
            with raw.cursor(binary=True) as cur:
                cur.execute(
                    _PG_APPEND,
                    (world_id, n, world_id, n, at, actor, *_arrays(entries), world_id.hex),
                )
                return int(cur.fetchone()[0])
        if first_seq is None:
            first_seq = bump(conn, world_id, n) - n + 1
        if n <= _COPY_OVER:
            with raw.cursor(binary=True) as cur:
                cur.execute(_PG_INSERT, (world_id, first_seq, at, actor, *_arrays(entries)))
        else:
            with raw.cursor(binary=True) as cur, cur.copy(_PG_COPY) as copy:
                copy.set_types(_PG_COPY_TYPES)
                for i, e in enumerate(entries):
                    copy.write_row((world_id, first_seq + i, at, e.cx, e.cz, e.kind, e.version,
                                    actor, e.edits, e.prior, e.digest))  # fmt: skip
        return first_seq + n - 1
    if first_seq is None:
        first_seq = bump(conn, world_id, n) - n + 1
    wid, when = world_id.hex, sqlite_time(at)
    _raw(conn).executemany(
        _SQLITE_INSERT,
        [
            (
                wid,
                first_seq + i,
                when,
                e.cx,
                e.cz,
                e.kind,
                e.version,
                actor,
                e.edits,
                e.prior,
                e.digest,
            )
            for i, e in enumerate(entries)
        ],
    )
    return first_seq + n - 1


# ---------------------------------------------------------------------------- staging

_STAGING = "voxeldb_journal_staging"
_STAGING_COLUMNS = "ord, chunk_x, chunk_z, kind, version, edits, prior, digest"


def stage(conn: Connection, entries: Sequence[EntryRow], first_ord: int) -> None:
    """Park entries whose seqs are not known yet in a temporary table of the transaction
    (``put_many``'s memory stays bounded); :func:`unstage` moves them after the head bump."""
    if _is_pg(conn):
        raw = _raw(conn)
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (ord int8, chunk_x int4, "
            "chunk_z int4, kind int2, version int8, edits bytea, prior bytea, digest bytea) "
            "ON COMMIT DELETE ROWS"
        )
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {_STAGING} ({_STAGING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int8", "int4", "int4", "int2", "int8", "bytea", "bytea", "bytea"])
            for i, e in enumerate(entries):
                copy.write_row((first_ord + i, *e))
        return
    raw_sqlite: sqlite3.Connection = _raw(conn)
    raw_sqlite.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (ord INTEGER, chunk_x INTEGER, "
        "chunk_z INTEGER, kind INTEGER, version INTEGER, edits BLOB, prior BLOB, digest BLOB)"
    )
    raw_sqlite.executemany(
        f"INSERT INTO {_STAGING} ({_STAGING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(first_ord + i, *e) for i, e in enumerate(entries)],
    )


def unstage(
    conn: Connection, world_id: uuid.UUID, first_seq: int, actor: str | None, at: dt.datetime
) -> None:
    """Insert the staged entries with seq ``first_seq + ord``, then empty the staging table."""
    target = (
        f"INSERT INTO {_J} ({_COLUMNS}) SELECT {{m}}, {{m}} + ord, {{m}}, chunk_x, chunk_z, "
        f"kind, version, {{m}}, edits, prior, digest FROM {_STAGING}"
    )
    if _is_pg(conn):
        raw = _raw(conn)
        raw.execute(target.format(m="%s"), (world_id, first_seq, at, actor))
        raw.execute(f"TRUNCATE {_STAGING}")
        return
    raw_sqlite: sqlite3.Connection = _raw(conn)
    raw_sqlite.execute(target.format(m="?"), (world_id.hex, first_seq, sqlite_time(at), actor))
    raw_sqlite.execute(f"DELETE FROM {_STAGING}")


# ---------------------------------------------------------------------------- reads


def head(conn: Connection, world_id: uuid.UUID) -> int:
    """The newest seq of the world's journal, 0 when it has none."""
    mark = "%s" if _is_pg(conn) else "?"
    cur = _raw(conn).execute(
        f"SELECT seq FROM {_H} WHERE world_id = {mark}", (_wid(conn, world_id),)
    )
    row = cur.fetchone()
    cur.close()
    return 0 if row is None else int(row[0])


_READ_COLUMNS = "seq, logged_at, chunk_x, chunk_z, kind, version, actor, edits"


def select_entries(
    conn: Connection,
    world_id: uuid.UUID,
    *,
    since: int,
    limit: int,
    area: tuple[int, int, int, int] | None = None,
    actor: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    upto: int | None = None,
    prior: bool = False,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` entries with ``seq > since`` (and ``<= upto``) matching the filters,
    ascending: ``(seq, logged_at, cx, cz, kind, version, actor, edits[, prior, digest])``,
    ``logged_at`` an aware datetime."""
    pg = _is_pg(conn)
    mark = "%s" if pg else "?"
    where = [f"world_id = {mark}", f"seq > {mark}"]
    params: list[Any] = [_wid(conn, world_id), since]
    if upto is not None:
        where.append(f"seq <= {mark}")
        params.append(upto)
    if area is not None:
        x0, z0, x1, z1 = area
        where.append(f"chunk_x BETWEEN {mark} AND {mark} AND chunk_z BETWEEN {mark} AND {mark}")
        params += [x0, x1, z0, z1]
    if actor is not None:
        where.append(f"actor = {mark}")
        params.append(actor)
    if start is not None:
        where.append(f"logged_at >= {mark}")
        params.append(start if pg else sqlite_time(start))
    if end is not None:
        where.append(f"logged_at < {mark}")
        params.append(end if pg else sqlite_time(end))
    columns = _READ_COLUMNS + (", prior, digest" if prior else "")
    filtered = area is not None or actor is not None
    if pg and filtered:
        # The filters first, by their index (area or actor + time), then the order: a plain
        # ORDER BY seq LIMIT may walk the primary key through every entry of the world.
        sql = (
            f"WITH m AS MATERIALIZED (SELECT {columns} FROM {_J} WHERE {' AND '.join(where)}) "
            f"SELECT * FROM m ORDER BY seq LIMIT {int(limit)}"
        )
    else:
        sql = f"SELECT {columns} FROM {_J} WHERE {' AND '.join(where)} ORDER BY seq LIMIT {int(limit)}"
    if pg:
        with _raw(conn).cursor(binary=True) as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    cur = _raw(conn).execute(sql, params)
    rows = cur.fetchall()
    cur.close()
    return [(r[0], parse_sqlite_time(r[1]), *r[2:]) for r in rows]


# ---------------------------------------------------------------------------- partitions


def _day(d: dt.date) -> str:
    return f"{JOURNAL_PARTITION_PREFIX}{d:%Y%m%d}"


def partitions(conn: Connection) -> dict[str, tuple[dt.datetime, dt.datetime] | None]:
    """PostgreSQL: the journal's partitions, name -> (from, to), None for the default."""
    cur = _raw(conn).execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (_J,),
    )
    out: dict[str, tuple[dt.datetime, dt.datetime] | None] = {}
    for name, _bound in cur.fetchall():
        if name.startswith(JOURNAL_PARTITION_PREFIX):
            day = dt.datetime.strptime(name[len(JOURNAL_PARTITION_PREFIX) :], "%Y%m%d").replace(
                tzinfo=dt.UTC
            )
            out[name] = (day, day + dt.timedelta(days=1))
        else:
            out[name] = None
    return out


def create_partitions(
    conn: Connection,
    *,
    days_back: int = 1,
    days_ahead: int = 8,
    today: dt.date | None = None,
) -> int:
    """PostgreSQL: make the daily partitions of ``[today - days_back, today + days_ahead]``
    that are missing; how many were made. A day whose entries already went to the default
    partition keeps them there (prune deletes those by rows). Each partition in a savepoint,
    under a short lock timeout: a busy parent skips it until the next call."""
    if not _is_pg(conn):
        return 0
    today = today or dt.datetime.now(dt.UTC).date()
    have = partitions(conn)
    made = 0
    for offset in range(-days_back, days_ahead + 1):
        day = today + dt.timedelta(days=offset)
        name = _day(day)
        if name in have:
            continue
        nxt = day + dt.timedelta(days=1)
        savepoint = conn.begin_nested()
        try:
            raw = _raw(conn)
            raw.execute("SET LOCAL lock_timeout = '2s'")
            raw.execute(
                f"CREATE TABLE {name} PARTITION OF {_J} FOR VALUES FROM "
                f"('{day.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"
            )
            raw.execute(f"ALTER TABLE {name} ALTER COLUMN prior SET STORAGE EXTERNAL")
        except Exception:
            savepoint.rollback()
        else:
            savepoint.commit()
            made += 1
    return made


# ---------------------------------------------------------------------------- prune

_SQLITE_PRUNE_BATCH = 10_000


def prune(conn: Connection, cutoff: dt.datetime, world_id: uuid.UUID | None) -> int:
    """Delete the entries logged before ``cutoff`` (of one world, or all); how many.

    PostgreSQL, all worlds: the daily partitions wholly before ``cutoff`` are dropped (their
    rows counted first), rows are deleted only in the boundary day and the default
    partition. One world (partitions are shared): a DELETE. SQLite: batches of 10,000 rows,
    each committed (the caller passes an autocommit-free connection; see ``Database``).
    """
    if _is_pg(conn):
        raw = _raw(conn)
        total = 0
        if world_id is None:
            for name, bounds in sorted(partitions(conn).items()):
                if bounds is None or bounds[1] > cutoff:
                    continue
                total += int(raw.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
                raw.execute(f"DROP TABLE {name}")
            cur = raw.execute(f"DELETE FROM {_J} WHERE logged_at < %s", (cutoff,))
        else:
            cur = raw.execute(
                f"DELETE FROM {_J} WHERE world_id = %s AND logged_at < %s", (world_id, cutoff)
            )
        return total + max(int(cur.rowcount), 0)
    raw_sqlite: sqlite3.Connection = _raw(conn)
    when = sqlite_time(cutoff)
    where = "logged_at < ?" + ("" if world_id is None else " AND world_id = ?")
    params: tuple[Any, ...] = (when,) if world_id is None else (when, world_id.hex)
    total = 0
    while True:
        cur = raw_sqlite.execute(
            f"DELETE FROM {_J} WHERE rowid IN (SELECT rowid FROM {_J} WHERE {where} "
            f"LIMIT {_SQLITE_PRUNE_BATCH})",
            params,
        )
        total += int(cur.rowcount)
        conn.commit()
        if cur.rowcount < _SQLITE_PRUNE_BATCH:
            return total
