"""The per-world block-state registry: state <-> stable integer id.

Plain SQLAlchemy Core against the ``block_states`` table (``_schema``, docs/schema.md), so that
the chunk store can use it without the ORM (``voxeldb.chunks`` never imports ``voxeldb.meta``).

Ids are 1, 2, 3, ... per world in order of first use; 0 is air and is never stored. New
states are inserted up to 1,000 a statement with ``INSERT ... SELECT max(state_id) + n ...
ON CONFLICT DO NOTHING``: when two processes race for the same state, the loser's insert does
nothing and it reads the winner's id; when they race for the same *id* with different
states, the loser's insert does nothing either and it tries again with the next ids (the one
retry policy, ``voxeldb._retry``). Nothing raises inside the caller's transaction, so no
savepoint is needed. On SQLite the caller's write transaction (``BEGIN IMMEDIATE``)
serializes interning; on PostgreSQL the world's registry token row, updated first, does.

Assigned ids never change -- unless the database is restored from a backup, which brings
back an older registry that later transactions extend differently. So a per-process memo
answers repeated questions without looking the states up, but it is keyed by the world's
registry token (``block_state_tokens``: random, replaced in the transaction that registers a
new state, restored together with the registry it stands for), which every call reads first:
a memo learned under another token is dropped. Only ids read back as committed go into the
memo: an id a transaction inserted itself
is answered from that transaction's own pending set and is forgotten when it ends, whether
it commits, rolls back or fails to commit (another process may then give that id to
another state); the next transaction reads it from the table.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    TextClause,
    bindparam,
    select,
    text,
)

from voxeldb._engine import SAVEPOINT_SCOPED, TRANSACTION_SCOPED, install_transaction_scope
from voxeldb._ids import as_uuid, fresh_version
from voxeldb._retry import retry
from voxeldb.chunks._schema import block_state_tokens_table, block_states_table
from voxeldb.errors import NotFoundError, ValidationError

__all__ = [
    "AIR",
    "AIR_KEY",
    "block_states_table",
    "clear_memo",
    "intern_states",
    "lookup_states",
    "normalize_state",
    "state_key",
]

AIR: dict[str, Any] = {"type": "air"}
AIR_KEY = '{"type":"air"}'
_MAX_RETRIES = 100
"""Rounds of id races one ``intern_states`` call may lose before giving up."""
_BATCH = 1000
"""Keys, ids or new states per statement: PostgreSQL takes at most 65,535 bind parameters a
statement, SQLite 32,766."""

_bt = block_states_table
_tt = block_state_tokens_table

_TOKEN = select(_tt.c.token).where(_tt.c.world_id == bindparam("world_id"))
# Taken before a new state is inserted: on PostgreSQL the row lock also queues the
# transactions registering new states in one world, which spares them most id races.
_NEW_TOKEN = text(
    f"INSERT INTO {_tt.name} (world_id, token) VALUES (:world_id, :token) "
    "ON CONFLICT (world_id) DO UPDATE SET token = excluded.token"
).bindparams(
    bindparam("world_id", type_=_tt.c.world_id.type),
    bindparam("token", type_=_tt.c.token.type),
)

_LOOKUP_KEYS = select(_bt.c.state_key, _bt.c.state_id).where(
    _bt.c.world_id == bindparam("world_id"),
    _bt.c.state_key.in_(bindparam("keys", expanding=True)),
)
_LOOKUP_IDS = select(_bt.c.state_id, _bt.c.state_key).where(
    _bt.c.world_id == bindparam("world_id"),
    _bt.c.state_id.in_(bindparam("ids", expanding=True)),
)


@functools.lru_cache(maxsize=8)
def _insert(n: int) -> TextClause:
    """One INSERT of ``n`` new states, numbered ``max(state_id) + 1 ... + n`` in order.

    The aggregate is taken once per statement, not once per state (on a table the planner
    believes small it is a scan: a per-state INSERT made 65,536 new states take minutes).
    ``DO NOTHING`` (no conflict target) covers both races, for the state_key and for the id:
    a row that lost one is simply not inserted (nor returned), and the caller looks it up. The WHERE
    clause is required by SQLite's parser for an upsert on INSERT ... SELECT; ``columnN`` are
    the names both databases give the columns of a VALUES list.
    """
    values = ", ".join(f"({i + 1}, :k{i}, :s{i})" for i in range(n))
    params = [bindparam("world_id", type_=_bt.c.world_id.type)]
    for i in range(n):
        params.append(bindparam(f"k{i}", type_=_bt.c.state_key.type))
        params.append(bindparam(f"s{i}", type_=_bt.c.state.type))
    return text(
        f"INSERT INTO {_bt.name} (world_id, state_id, state_key, state) "
        "SELECT :world_id, b.m + v.column1, v.column2, v.column3 FROM "
        f"(SELECT COALESCE(MAX(state_id), 0) AS m FROM {_bt.name} WHERE world_id = :world_id) b, "
        f"(VALUES {values}) v WHERE 1 = 1 "
        "ON CONFLICT DO NOTHING RETURNING state_key, state_id"
    ).bindparams(*params)


def _batches(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _ids_of_keys(conn: Connection, world_id: uuid.UUID, keys: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _batches(keys):
        found.update(
            (row[0], row[1])
            for row in conn.execute(_LOOKUP_KEYS, {"world_id": world_id, "keys": list(part)})
        )
    return found


# --- normalization --------------------------------------------------------------------


MAX_STATE_DEPTH = 32
"""Nesting levels a block state may have (the dict itself is level 1)."""
MAX_STATE_BYTES = 2048
"""UTF-8 bytes of a state's canonical JSON (its ``state_key``): the unique index on the key
is a B-tree, whose entries PostgreSQL caps at about 2.7 kB."""
MIN_STATE_INT = -(2**63)
MAX_STATE_INT = 2**63 - 1


def _refuse(message: str) -> ValidationError:
    return ValidationError(f"block state {message}"[:300], field="state")


def _check_text(value: str, path: str, what: str) -> None:
    if "\x00" in value:
        raise _refuse(f"{path} has a NUL character in {what} (not storable in PostgreSQL)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(f"{path} has {what} that is not valid Unicode (a lone surrogate?)") from None


def _check_json(value: Any, path: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, path, "a string")
        return
    if isinstance(value, int):
        if not MIN_STATE_INT <= value <= MAX_STATE_INT:
            raise _refuse(f"{path} is an integer outside the 64-bit range [-2**63, 2**63)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(f"{path} is {value!r}: not valid JSON")
        return
    if isinstance(value, Mapping | list | tuple):
        if depth >= MAX_STATE_DEPTH:
            raise _refuse(f"is nested more than {MAX_STATE_DEPTH} levels deep (at {path})")
        if isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise _refuse(f"{path} has a non-string key {k!r}")
                _check_text(k, path, "a key")
                _check_json(v, f"{path}.{k}", depth + 1)
        else:
            for i, v in enumerate(value):
                _check_json(v, f"{path}[{i}]", depth + 1)
        return
    raise _refuse(f"{path} is a {type(value).__name__}, which is not JSON-able")


def normalize_state(state: str | Mapping[str, Any]) -> dict[str, Any]:
    """The dict form of a block state: ``"stone"`` is ``{"type": "stone"}``.

    A dict must have a non-empty string ``"type"`` and be JSON that both backends store and
    give back unchanged: strings without NUL characters or lone surrogates, integers in the
    64-bit range, finite floats, at most :data:`MAX_STATE_DEPTH` levels, at most
    :data:`MAX_STATE_BYTES` bytes of canonical JSON. Anything else is a
    :class:`~voxeldb.errors.ValidationError` (``field="state"``) that says what is wrong.
    """
    if isinstance(state, str):
        if not state:
            raise _refuse("name is empty")
        named: dict[str, Any] = {"type": state}
        _check_json(named, "state", 0)
        _check_size(named)
        return named
    if not isinstance(state, Mapping):
        raise _refuse(
            f"must be a name (str) or a dict with a 'type', got {type(state).__name__}: {state!r}"
        )
    kind = state.get("type")
    if not isinstance(kind, str) or not kind:
        raise _refuse(f"needs a non-empty string 'type', got {state!r}")
    _check_json(state, "state", 0)
    # A round trip through JSON turns tuples into lists: the dict form is what reads return.
    normalized: dict[str, Any] = json.loads(json.dumps(state))
    _check_size(normalized)
    return normalized


def _check_size(normalized: dict[str, Any]) -> None:
    size = len(state_key(normalized).encode("utf-8"))
    if size > MAX_STATE_BYTES:
        raise _refuse(f"is {size} bytes of JSON; at most {MAX_STATE_BYTES} are allowed")


def state_key(state: Mapping[str, Any]) -> str:
    """Canonical JSON of a state's dict form: the registry's unique key.

    Reads decode the state from this text, not from the ``state`` column: PostgreSQL's JSONB
    keeps numbers as ``numeric`` and gives ``1e20`` back as an integer (docs/schema.md).
    """
    return json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)


# --- the memo --------------------------------------------------------------------------


class _WorldMemo:
    __slots__ = ("by_id", "by_key", "token")

    def __init__(self, token: int | None) -> None:
        self.token = token
        self.by_key: dict[str, int] = {AIR_KEY: 0}
        self.by_id: dict[int, dict[str, Any]] = {0: AIR}


_memo: dict[tuple[str, uuid.UUID], _WorldMemo] = {}
_memo_lock = threading.Lock()
_PENDING = "voxeldb_block_states_pending"
_DIRTY = "voxeldb_block_states_dirty"
TRANSACTION_SCOPED.update((_PENDING, _DIRTY))
SAVEPOINT_SCOPED.add(_PENDING)  # the rows a rolled-back savepoint inserted are gone


def _root_engine(engine: Engine) -> Engine:
    # Engines made with .execution_options() share the events of the engine they came from.
    while (proxied := getattr(engine, "_proxied", None)) is not None:
        engine = proxied
    return engine


def _db_key(conn: Connection) -> str:
    return _root_engine(conn.engine).url.render_as_string(hide_password=True)


def _world_memo(conn: Connection, db: str, world_id: uuid.UUID) -> _WorldMemo:
    """The memo of the world's registry as it is now (one query for its token).

    A world without a token (its registry was written by something other than
    ``intern_states``, e.g. an older voxeldb) gets an empty memo of this call only.
    """
    token = conn.execute(_TOKEN, {"world_id": world_id}).scalar()
    if token is None:
        return _WorldMemo(None)
    with _memo_lock:
        memo = _memo.get((db, world_id))
        if memo is None or memo.token != token:
            memo = _memo[(db, world_id)] = _WorldMemo(token)
        return memo


def clear_memo() -> None:
    """Forget every memoized id (for a database that was dropped and recreated in place)."""
    with _memo_lock:
        _memo.clear()


def _hook(conn: Connection) -> None:
    # What a transaction inserted never reaches the memo, not even at its commit:
    # SQLAlchemy's "commit" event fires before COMMIT reaches the server, and a COMMIT that
    # fails (a restart, a lost connection) would leave ids in the memo that the database
    # never stored. Other processes, and this one in its next transaction, learn those ids
    # from the table once they are committed. Engines from make_engine forget the pending
    # ids at every transaction's end already; others are set up here on first use.
    install_transaction_scope(_root_engine(conn.engine))


def _remember(
    conn: Connection,
    db: str,
    world_id: uuid.UUID,
    memo: _WorldMemo,
    found: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    if not found:
        return
    if not conn.in_transaction() or not conn.info.get(_DIRTY):
        # Autocommit, or a transaction that inserted no state: every row it can see was
        # committed by someone (READ COMMITTED; SQLite has one writer), so it is final.
        for key, (state_id, state) in found.items():
            memo.by_key[key] = state_id
            memo.by_id[state_id] = state
        return
    pending = conn.info.setdefault(_PENDING, {})
    pending.setdefault((db, world_id), {}).update(found)


# --- the API ---------------------------------------------------------------------------


def intern_states(
    conn: Connection, world_id: uuid.UUID | str, states: Sequence[str | Mapping[str, Any]]
) -> list[int]:
    """The ids of ``states`` in world ``world_id``, registering the ones not seen before.

    One query (per 1,000) looks up every state not memoized; the new ones are then inserted
    1,000 a statement.
    """
    wid = as_uuid(world_id)
    _hook(conn)
    db = _db_key(conn)
    memo = _world_memo(conn, db, wid)
    pending: dict[str, tuple[int, dict[str, Any]]] = (
        conn.info.get(_PENDING, {}).get((db, wid), {}) if conn.in_transaction() else {}
    )

    keys: list[str] = []
    by_key: dict[str, dict[str, Any]] = {}
    name_keys: dict[str, str] = {}
    for state in states:
        if isinstance(state, str) and state in name_keys:
            keys.append(name_keys[state])
            continue
        normalized = normalize_state(state)
        key = state_key(normalized)
        if isinstance(state, str):
            name_keys[state] = key
        keys.append(key)
        by_key.setdefault(key, normalized)

    ids: dict[str, int] = {}
    missing: list[str] = []
    for key in by_key:
        if key in memo.by_key:
            ids[key] = memo.by_key[key]
        elif key in pending:
            ids[key] = pending[key][0]
        else:
            missing.append(key)

    if missing:
        found = _ids_of_keys(conn, wid, missing)
        new = [key for key in missing if key not in found]
        if new:
            if conn.in_transaction():
                conn.info[_DIRTY] = True
            # A new token in the same transaction: every memo keyed by the old one is dropped
            # by its process's next call, and a restore brings the old token back with the
            # registry it stood for.
            conn.execute(_NEW_TOKEN, {"world_id": wid, "token": fresh_version()})
            # On PostgreSQL that waited for any other transaction registering states in this
            # world to end: what it registered is looked up now, so that a batch mixes no
            # taken state with new ones (ids stay 1, 2, 3, ... without gaps).
            found.update(_ids_of_keys(conn, wid, new))

        def register() -> list[str]:
            """Insert the keys still unregistered; those that lost a race for their id."""
            pending = [key for key in new if key not in found]
            for part in _batches(pending):
                params: dict[str, Any] = {"world_id": wid}
                for i, key in enumerate(part):
                    params[f"k{i}"] = key
                    params[f"s{i}"] = by_key[key]
                found.update((row[0], row[1]) for row in conn.execute(_insert(len(part)), params))
            # A state another writer registered first was not inserted: its id is looked up.
            lost = [key for key in pending if key not in found]
            if lost:
                found.update(_ids_of_keys(conn, wid, lost))
            # A key still absent lost a race for its id to another state: try the next id.
            return [key for key in pending if key not in found]

        if new:
            retry(
                register,
                again=bool,
                attempts=_MAX_RETRIES,
                what=(
                    f"registering {len(new)} block state(s) in world {wid} (concurrent "
                    "writers, or a REPEATABLE READ transaction?)"
                ),
            )
        ids.update(found)
        _remember(conn, db, wid, memo, {key: (found[key], by_key[key]) for key in missing})

    return [ids[key] for key in keys]


def lookup_states(
    conn: Connection, world_id: uuid.UUID | str, ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """The dict form of each id in ``ids`` (0 is air); an unknown id is a NotFoundError."""
    wid = as_uuid(world_id)
    _hook(conn)
    db = _db_key(conn)
    memo = _world_memo(conn, db, wid)
    pending_by_id = {
        state_id: state
        for state_id, state in (
            conn.info.get(_PENDING, {}).get((db, wid), {}).values() if conn.in_transaction() else ()
        )
    }
    result: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    for raw in {int(i) for i in ids}:
        if raw in memo.by_id:
            result[raw] = memo.by_id[raw]
        elif raw in pending_by_id:
            result[raw] = pending_by_id[raw]
        else:
            missing.append(raw)
    if missing:
        rows = [
            row
            for part in _batches(missing)
            for row in conn.execute(_LOOKUP_IDS, {"world_id": wid, "ids": list(part)})
        ]
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for state_id, key in rows:
            state_dict = json.loads(key)
            result[state_id] = state_dict
            found[key] = (state_id, state_dict)
        unknown = sorted(set(missing) - result.keys())
        if unknown:
            raise NotFoundError(
                f"block state id(s) {unknown[:10]} are not registered in world {wid}"
            )
        _remember(conn, db, wid, memo, found)
    # Callers get their own dicts, nested values included: mutating one must not change
    # the memo.
    return {state_id: copy.deepcopy(state) for state_id, state in result.items()}
