"""``voxeldb migrate``: copy a whole voxeldb database to another (SQLite <-> PostgreSQL).

The target's schema is made by the Alembic migrations, then every table is copied in
foreign-key order, row values as they are (ids, versions and timestamps kept; chunks as the
stored codec bytes, never decoded).

Failure and resumption:

- every table but ``world_chunks`` is copied in one target transaction: it is on the target
  completely or not at all;
- ``world_chunks`` is copied world by world in key order ``(chunk_x, chunk_z)``, one
  transaction per batch, so the target always holds a prefix of each world's chunks; a
  resumed run continues after the last chunk there;
- a target that holds rows already is refused unless ``resume=True``; resuming skips the
  tables whose row count matches the source and fails clearly when a table holds a different
  number of rows than a finished or untouched copy could.

The world journal (``world_journal``, ``world_journal_heads``) is copied like any table, every
entry with its ``seq`` and each world's head; on a PostgreSQL target its daily partitions are
made first for the days the entries cover, and the rows go through the parent table, which
routes each to its partition.

The source should not be written to while it is copied (stop the game servers): rows written
behind the copy's position are not picked up.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    and_,
    func,
    insert,
    or_,
    select,
    text,
)

from voxeldb._text import safe_url
from voxeldb._time import as_utc
from voxeldb.chunks import create_journal_partitions, world_journal_table
from voxeldb.errors import TransferError
from voxeldb.meta import current, head_revision, upgrade

__all__ = ["TransferProgress", "TransferReport", "transfer_database"]

_ROW_BATCH = 1000
_CHUNK_BATCH = 200


class TransferProgress(Protocol):
    """What :func:`transfer_database` reports as it goes (the CLI draws progress bars)."""

    def table_started(self, table: str, total: int, done: int) -> None: ...

    def advanced(self, table: str, rows: int) -> None: ...

    def table_finished(self, table: str, copied: int, skipped: bool) -> None: ...


class _NoProgress:
    def table_started(self, table: str, total: int, done: int) -> None:
        pass

    def advanced(self, table: str, rows: int) -> None:
        pass

    def table_finished(self, table: str, copied: int, skipped: bool) -> None:
        pass


@dataclass
class TransferReport:
    copied: dict[str, int] = field(default_factory=dict)
    """Rows copied per table by this run."""
    skipped: list[str] = field(default_factory=list)
    """Tables a resumed run found complete on the target."""
    seconds: float = 0.0


def _count(conn: Connection, table: Table, *where: Any) -> int:
    q = select(func.count()).select_from(table)
    if where:
        q = q.where(*where)
    return int(conn.execute(q).scalar_one())


def _utc_converter(table: Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Timestamps as aware UTC: SQLite keeps them naive (in UTC), PostgreSQL in its time zone."""
    cols = [
        c.name
        for c in table.columns
        if isinstance(c.type, DateTime) or isinstance(getattr(c.type, "impl", None), DateTime)
    ]
    if not cols:
        return lambda row: row

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        for name in cols:
            value = row.get(name)
            if isinstance(value, dt.datetime):
                row[name] = as_utc(value)
        return row

    return convert


def _check_same_database(source: Engine, target: Engine) -> None:
    a = source.url.set(password=None)
    if a == target.url.set(password=None):
        raise TransferError(f"source and target are the same database ({safe_url(a)})")


def transfer_database(
    source: Engine,
    target: Engine,
    metadata: MetaData,
    *,
    resume: bool = False,
    progress: TransferProgress | None = None,
    row_batch: int = _ROW_BATCH,
    chunk_batch: int = _CHUNK_BATCH,
) -> TransferReport:
    """Copy every voxeldb table from ``source`` to ``target`` (see the module docstring)."""
    progress = progress or _NoProgress()
    started = time.perf_counter()
    _check_same_database(source, target)
    head = head_revision()
    src_rev = current(source)
    if src_rev is None:
        raise TransferError(f"the source {safe_url(source.url)} has no voxeldb schema")
    if src_rev != head:
        raise TransferError(
            f"the source schema is at revision {src_rev}, this voxeldb's newest is {head}: "
            "upgrade the source first (voxeldb --database-url SOURCE setup --create-tables)"
        )
    tables = [t for t in metadata.sorted_tables if t.name != "alembic_version"]
    with source.connect() as sconn:
        source_counts = {t.name: _count(sconn, t) for t in tables}

    tgt_rev = current(target)
    if tgt_rev is not None:
        with target.connect() as tconn:
            target_counts = {t.name: _count(tconn, t) for t in tables}
        holding = [n for n, c in target_counts.items() if c]
        if holding and not resume:
            raise TransferError(
                f"the target already holds data (table(s) {', '.join(holding[:5])}); "
                "migrate into an empty database, or pass --resume to continue an interrupted "
                "migration"
            )
    upgrade(target)
    with target.connect() as tconn:
        target_counts = {t.name: _count(tconn, t) for t in tables}

    report = TransferReport()
    for table in tables:
        if table.name == "world_chunks":
            report.copied[table.name] = _copy_chunks(
                source, target, table, metadata, source_counts[table.name],
                target_counts[table.name], progress, chunk_batch,
            )  # fmt: skip
            continue
        have, want = target_counts[table.name], source_counts[table.name]
        if have:
            if have != want:
                raise TransferError(
                    f"cannot resume: table {table.name} holds {have} rows on the target and "
                    f"{want} on the source (was either written to since the first run?); "
                    "empty the target and migrate again"
                )
            progress.table_started(table.name, want, have)
            progress.table_finished(table.name, 0, True)
            report.skipped.append(table.name)
            continue
        if table.name == world_journal_table.name and target.dialect.name == "postgresql":
            _journal_partitions(source, target, table)
        # Rows that may hold chunk bytes (the journal's ``prior``) go in chunk-sized batches.
        binary = any(isinstance(c.type, LargeBinary) for c in table.columns)
        batch = min(row_batch, chunk_batch) if binary else row_batch
        report.copied[table.name] = _copy_table(source, target, table, want, progress, batch)

    if target.dialect.name == "postgresql":
        _reset_sequences(target, tables)
    report.seconds = time.perf_counter() - started
    return report


_MAX_PARTITION_DAYS = 1000
"""Daily journal partitions made for a copy at most; older entries go to the default one."""


def _journal_partitions(source: Engine, target: Engine, table: Table) -> None:
    """PostgreSQL: the journal's daily partitions for every day the source's entries cover,
    before they are copied, so that each row lands in its day's partition (which prune drops
    whole) rather than the default one. The rows themselves go through the parent table."""
    with source.connect() as sconn:
        first, last = sconn.execute(
            select(func.min(table.c.logged_at), func.max(table.c.logged_at))
        ).one()
    if first is None or last is None:
        return
    first_day, last_day = as_utc(first).date(), as_utc(last).date()
    days = min((last_day - first_day).days, _MAX_PARTITION_DAYS)
    with target.begin() as tconn:
        create_journal_partitions(tconn, days_back=days, days_ahead=0, today=last_day)


def _copy_table(
    source: Engine,
    target: Engine,
    table: Table,
    total: int,
    progress: TransferProgress,
    batch_size: int,
) -> int:
    progress.table_started(table.name, total, 0)
    convert = _utc_converter(table)
    copied = 0
    stmt = insert(table)
    with source.connect() as sconn, target.begin() as tconn:
        result = sconn.execute(
            select(table).order_by(*table.primary_key.columns),
            execution_options={"yield_per": batch_size},
        )
        for part in result.mappings().partitions(batch_size):
            rows = [convert(dict(r)) for r in part]
            tconn.execute(stmt, rows)
            copied += len(rows)
            progress.advanced(table.name, len(rows))
    progress.table_finished(table.name, copied, False)
    return copied


def _world_ids(conn: Connection, metadata: MetaData) -> list[uuid.UUID]:
    worlds = metadata.tables["worlds"]
    return [r[0] for r in conn.execute(select(worlds.c.id).order_by(worlds.c.id))]


def _copy_chunks(
    source: Engine,
    target: Engine,
    table: Table,
    metadata: MetaData,
    total: int,
    already: int,
    progress: TransferProgress,
    batch_size: int,
) -> int:
    progress.table_started(table.name, total, already)
    c = table.c
    convert = _utc_converter(table)
    stmt = insert(table)
    copied = 0
    with source.connect() as sconn:
        world_ids = _world_ids(sconn, metadata)
        sconn.rollback()
        for world_id in world_ids:
            with target.connect() as tconn:
                last = tconn.execute(
                    select(c.chunk_x, c.chunk_z)
                    .where(c.world_id == world_id)
                    .order_by(c.chunk_x.desc(), c.chunk_z.desc())
                    .limit(1)
                ).first()
            for rows in _chunk_batches(sconn, table, world_id, last, batch_size):
                with target.begin() as tconn:
                    tconn.execute(stmt, [convert(r) for r in rows])
                copied += len(rows)
                progress.advanced(table.name, len(rows))
            sconn.rollback()  # no long-lived read transaction on the source between worlds
    with source.connect() as sconn, target.connect() as tconn:
        have, want = _count(tconn, table), _count(sconn, table)
    if have != want:
        raise TransferError(
            f"world_chunks: the target holds {have} chunks after the copy, the source {want} "
            "(was the source written to during the migration?)"
        )
    progress.table_finished(table.name, copied, copied == 0 and already > 0)
    return copied


def _chunk_batches(
    conn: Connection,
    table: Table,
    world_id: uuid.UUID,
    after: Any,
    batch_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Keyset pagination over one world's chunks: each batch is one indexed range query."""
    c = table.c
    position = None if after is None else (int(after[0]), int(after[1]))
    while True:
        q = select(table).where(c.world_id == world_id)
        if position is not None:
            x, z = position
            q = q.where(or_(c.chunk_x > x, and_(c.chunk_x == x, c.chunk_z > z)))
        rows = [
            dict(r)
            for r in conn.execute(q.order_by(c.chunk_x, c.chunk_z).limit(batch_size)).mappings()
        ]
        if not rows:
            return
        position = (rows[-1]["chunk_x"], rows[-1]["chunk_z"])
        yield rows
        if len(rows) < batch_size:
            return


def _reset_sequences(engine: Engine, tables: list[Table]) -> None:
    """Rows were inserted with their ids: move each serial/identity sequence past the maximum."""
    with engine.begin() as conn:
        for table in tables:
            pk = list(table.primary_key.columns)
            if len(pk) != 1 or not isinstance(pk[0].type, Integer) or pk[0].autoincrement is False:
                continue
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}
            ).scalar()
            if seq:
                conn.execute(
                    text(
                        f'SELECT setval(:s, COALESCE((SELECT max("{pk[0].name}") FROM '
                        f'"{table.name}"), 0) + 1, false)'
                    ),
                    {"s": seq},
                )
