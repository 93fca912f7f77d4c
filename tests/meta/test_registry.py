"""The block-state registry (voxeldb.chunks._registry) on both backends."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from tests.meta import _workers
from voxeldb.chunks._registry import (
    clear_memo,
    intern_states,
    lookup_states,
    normalize_state,
    state_key,
)
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import BlockState, SessionLocal, World


def _world(engine: Engine, name: str = "w") -> uuid.UUID:
    with SessionLocal(bind=engine) as session:
        world = World(name=name, world_settings={})
        session.add(world)
        session.commit()
        return world.id


def test_normalize_state_names_and_dicts() -> None:
    assert normalize_state("stone") == {"type": "stone"}
    assert normalize_state({"type": "oak_log", "axis": "y"}) == {"type": "oak_log", "axis": "y"}
    assert normalize_state({"type": "x", "list": (1, 2)}) == {"type": "x", "list": [1, 2]}
    assert state_key({"b": 1, "type": "a"}) == '{"b":1,"type":"a"}'


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("", "empty"),
        (42, "int"),
        (None, "NoneType"),
        ({"axis": "y"}, "'type'"),
        ({"type": ""}, "'type'"),
        ({"type": 3}, "'type'"),
        ({"type": "x", "v": float("nan")}, "not valid JSON"),
        ({"type": "x", "v": object()}, "not JSON-able"),
        ({"type": "x", 1: "y"}, "non-string key"),
    ],
)
def test_normalize_state_rejects_bad_states(bad: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as info:
        normalize_state(bad)
    assert info.value.field == "state"


def test_intern_and_lookup_round_trip(engine: Engine) -> None:
    wid = _world(engine)
    log = {"type": "oak_log", "axis": "y"}
    with engine.begin() as conn:
        ids = intern_states(conn, wid, ["stone", "air", log, "stone", {"type": "air"}, "dirt"])
    assert ids == [1, 0, 2, 1, 0, 3]
    with engine.begin() as conn:
        # Same states, same ids; a new one gets the next id; str world ids work too.
        assert intern_states(conn, str(wid), [log, "grass", "stone"]) == [2, 4, 1]
    clear_memo()
    with engine.connect() as conn:
        states = lookup_states(conn, wid, [0, 1, 2, 3, 4])
    assert states == {
        0: {"type": "air"},
        1: {"type": "stone"},
        2: log,
        3: {"type": "dirt"},
        4: {"type": "grass"},
    }
    with engine.connect() as conn:
        rows = conn.execute(select(BlockState.state_id, BlockState.state_key)).all()
    assert sorted(rows) == [
        (1, '{"type":"stone"}'),
        (2, '{"axis":"y","type":"oak_log"}'),
        (3, '{"type":"dirt"}'),
        (4, '{"type":"grass"}'),
    ]


def test_worlds_have_separate_registries(engine: Engine) -> None:
    a, b = _world(engine, "a"), _world(engine, "b")
    with engine.begin() as conn:
        assert intern_states(conn, a, ["stone", "dirt"]) == [1, 2]
        assert intern_states(conn, b, ["dirt"]) == [1]
        assert lookup_states(conn, b, [1]) == {1: {"type": "dirt"}}


def test_lookup_of_unknown_id_is_an_error(engine: Engine) -> None:
    wid = _world(engine)
    with engine.connect() as conn, pytest.raises(NotFoundError, match="99"):
        lookup_states(conn, wid, [99])


def test_rolled_back_ids_are_not_memoized(engine: Engine) -> None:
    wid = _world(engine)
    with engine.connect() as conn:
        assert intern_states(conn, wid, ["diamond_ore"]) == [1]
        conn.rollback()
    # Another writer takes id 1 for another state; the memo must not remember diamond_ore=1.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO block_states (world_id, state_id, state_key, state) VALUES "
                "(:w, 1, :k, :s)"
            ).bindparams(),
            {
                "w": wid if engine.dialect.name == "postgresql" else wid.hex,
                "k": '{"type":"gold_ore"}',
                "s": '{"type":"gold_ore"}',
            },
        )
    with engine.begin() as conn:
        assert intern_states(conn, wid, ["diamond_ore", "gold_ore"]) == [2, 1]


def test_lookup_is_one_query_for_many_states(engine: Engine) -> None:
    wid = _world(engine)
    with engine.begin() as conn:
        intern_states(conn, wid, [f"s{i}" for i in range(20)])
    clear_memo()
    statements: list[str] = []
    from sqlalchemy import event

    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        with engine.begin() as conn:
            ids = intern_states(conn, wid, [f"s{i}" for i in range(20)])
    finally:
        event.remove(engine, "before_cursor_execute", _count)
    assert ids == list(range(1, 21))
    assert len([s for s in statements if "block_states" in s]) == 1


def test_concurrent_processes_get_identical_ids(engine: Engine, database_url: str) -> None:
    wid = _world(engine)
    ctx = multiprocessing.get_context("spawn")
    states: list[Any] = [f"block_{i}" for i in range(24)] + [{"type": "log", "axis": "z"}]
    orders = [states, list(reversed(states)), states[12:] + states[:12]]
    barrier = ctx.Barrier(len(orders))
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_workers.intern_in_batches,
            args=(database_url, str(wid), order, batch, barrier, out),
        )
        for order, batch in zip(orders, (5, 3, 25), strict=True)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(kind == "ok" for kind, _ in results), results
    first = results[0][1]
    assert all(ids == first for _, ids in results[1:])
    assert sorted(first.values()) == list(range(1, len(states) + 1))
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(BlockState)).scalar_one()
    assert count == len(states)


def test_interning_adds_no_listener_to_an_engine_in_use(engine: Engine) -> None:
    """Engines voxeldb makes forget the registry's uncommitted ids at every transaction's
    end from the start: interning adds no listener to them. One added on first use, while a
    writer thread ran transactions on the engine, broke another thread's transaction
    ("deque mutated during iteration", user_for_token beside set_block on SQLite)."""

    def listeners() -> dict[str, int]:
        names = ("begin", "commit", "rollback", "rollback_savepoint")
        return {name: len(list(getattr(engine.dispatch, name))) for name in names}

    before = listeners()
    assert all(before.values())  # installed when the engine was made
    wid = _world(engine, "listeners")
    with engine.begin() as conn:
        intern_states(conn, wid, ["stone", "lantern"])
    assert listeners() == before
