"""Which rows belong to a world, and their values as JSON and back.

Worked out from the foreign keys of the ORM metadata: a new world-owned table is carried
without changes here.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, MetaData, Table, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from voxeldb._ids import fresh_version
from voxeldb._time import as_utc
from voxeldb.errors import SnapshotError

__all__ = [
    "REDACTED",
    "REGENERATED",
    "UNUSABLE_PASSWORD_PREFIX",
    "Plan",
    "criterion",
    "from_json",
    "json_bytes",
    "owned_fks",
    "plan_tables",
    "python_type",
    "unusable_password_hash",
]

UNUSABLE_PASSWORD_PREFIX = "!restored:"
"""How the password marker of a user created by a restore begins."""


def unusable_password_hash() -> str:
    """A password marker no password matches: it is no bcrypt hash, so checking a password
    against it answers False after one bcrypt at the configured cost (the stand-in hash,
    docs/security.md), and only setting a password lets the user log in."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_hex(16)


# Columns that never leave the database, and are never taken from a file: on restore they
# get the value the factory makes, or the database default (None), whatever the file holds.
# A restored user has no usable password and no login history.
REDACTED: dict[str, dict[str, Callable[[], Any] | None]] = {
    "users": {
        "password_hash": unusable_password_hash,
        "password_changed_at": None,
        "last_login_at": None,
        "auth_epoch": None,
    },
}

# Columns that travel but get a new value on restore. The block-state registry's token keys
# every process's memo of the registry: a fresh one drops memos learned before the restore.
REGENERATED: dict[str, dict[str, Callable[[], Any]]] = {
    "block_state_tokens": {"token": fresh_version},
}


@dataclass(frozen=True)
class Plan:
    owned: list[Table]
    """Tables reachable from ``worlds`` against the foreign keys, parents first (no chunks)."""
    references: list[Table]
    """Tables the owned rows point at that are not the world's own (users, agents), parents first."""
    chunks: Table


def plan_tables(metadata: MetaData) -> Plan:
    tables = metadata.tables
    if "worlds" not in tables or "world_chunks" not in tables:
        raise SnapshotError("the ORM metadata has no worlds/world_chunks tables")
    owned_names = {"worlds"}
    changed = True
    while changed:
        changed = False
        for table in metadata.sorted_tables:
            if table.name in owned_names:
                continue
            if any(fk.column.table.name in owned_names for fk in table.foreign_keys):
                owned_names.add(table.name)
                changed = True
    ref_names: set[str] = set()
    frontier = [tables[n] for n in owned_names]
    while frontier:
        table = frontier.pop()
        for fk in table.foreign_keys:
            parent = fk.column.table.name
            if parent not in owned_names and parent not in ref_names:
                ref_names.add(parent)
                frontier.append(tables[parent])
    order = metadata.sorted_tables
    return Plan(
        owned=[t for t in order if t.name in owned_names and t.name != "world_chunks"],
        references=[t for t in order if t.name in ref_names],
        chunks=tables["world_chunks"],
    )


def owned_fks(table: Table, owned: set[str]) -> list[ForeignKey]:
    return [
        fk
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)
        if fk.column.table.name in owned and fk.column.table is not table
    ]


def criterion(
    table: Table, world_id: uuid.UUID, owned: set[str], depth: int = 0
) -> ColumnElement[bool]:
    """SQL selecting ``table``'s rows that hang off the world (subqueries up the FK chain)."""
    if table.name == "worlds":
        return table.c.id == world_id
    if depth > 16:  # pragma: no cover - a cycle the plan should have excluded
        raise SnapshotError(f"foreign keys of {table.name} are too deeply nested")
    parts: list[ColumnElement[bool]] = []
    for fk in owned_fks(table, owned):
        parent = fk.column.table
        assert isinstance(parent, Table)
        sub = select(fk.column).where(criterion(parent, world_id, owned, depth + 1))
        parts.append(fk.parent.in_(sub))
    return or_(*parts)


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def python_type(column: Column[Any]) -> type | None:
    kind: Any = column.type
    while isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return None
    try:
        return kind.python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return None


def from_json(value: Any, column: Column[Any]) -> Any:
    if value is None:
        return None
    kind = python_type(column)
    if kind is None or not isinstance(value, str):
        return value
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is dt.datetime:
        # SQLite hands timestamps back naive (they are UTC): say so for PostgreSQL's sake.
        return as_utc(dt.datetime.fromisoformat(value))
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    if kind is dt.time:
        return dt.time.fromisoformat(value)
    if kind is bytes:
        return base64.b64decode(value)
    if kind is decimal.Decimal:
        return decimal.Decimal(value)
    return value


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, default=_to_json, separators=(",", ":"), allow_nan=False).encode()
