"""The game services' throughput on PostgreSQL (issue 13's bars), one process.

Run: ``pytest benchmarks/test_game_bench.py --benchmark-only -s``. The figures against the
bars are printed at the end of the run (the "game bars" section). With
``--benchmark-disable`` every benchmark runs once on small inputs, as a test.

- ``choose``: one choice per call, its own transaction, durable (the commit waits for the
  disk): the option's conditions checked on the locked character, a StoryChoice recorded,
  the place moved, a stat effect applied. Wanted: >= 2,000 calls/s. ``[not_durable]``: the
  same with ``durable=False``.
- ``gain_experience``: one gain of 1 per call, its own transaction, durable and not.
  Wanted: >= 2,000 calls/s. ``gain_experience_levelling``: every gain reaches a level (the
  path of a level-up; most gains are one UPDATE), for comparison.
- ``choose_batched``: choose in a caller's session committed every 100 calls (how a game
  server's tick would call it), for comparison.
- The floor, psycopg alone on a connection of its own: one UPDATE of a character in
  autocommit (one round trip and a commit, the least a durable write costs), durable or
  not as the call beside it. The disk's commit latency on a shared machine swings by 10x
  within seconds, so each of choose and gain_experience is also timed interleaved with the
  floor, call for call: that ratio is the steady figure. ``raw_transaction``: what choose
  used to send (BEGIN, SELECT ... FOR UPDATE, one write, COMMIT), for comparison.
- ``characters_near``: radius 50 around a point, with 10^5 characters in the world.
  Wanted: <= 5 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from tests._services import temporary_postgres_database
from tests.services._game import Game, bulk_characters, make_game

from benchmarks._report import print_report
from voxeldb import services
from voxeldb._engine import make_engine
from voxeldb.meta import Character, SessionLocal, configure, upgrade

BAR = 2000.0
RESULTS: dict[str, float] = {}
PAIRED: dict[str, tuple[float, float]] = {}
DURABILITY = pytest.mark.parametrize("durable", [True, False], ids=["durable", "not_durable"])


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = float(stats.stats.median)


def _suffix(durable: bool) -> str:
    return "" if durable else "[not_durable]"


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    rate = {name: 1.0 / median for name, median in RESULTS.items()}
    for name in ("choose", "gain_experience"):
        for durable in (True, False):
            key = name + _suffix(durable)
            if key not in rate:
                continue
            got = rate[key]
            line = f"{key}: {got:,.0f} calls/s, {got / BAR:.2f}x the bar of {BAR:,.0f}"
            if key in PAIRED:
                call, floor = PAIRED[key]
                line += (
                    f"; interleaved with the floor: {1 / call:,.0f}/s beside {1 / floor:,.0f}/s,"
                    f" {floor / call:.2f}x the floor's rate"
                )
            lines.append(line)
    for key, what in (
        ("raw_commit", "the floor (one durable UPDATE, psycopg alone)"),
        ("raw_commit[not_durable]", "the floor, not durable"),
        ("raw_transaction", "choose's former 4 round trips, durable (psycopg alone)"),
        ("gain_experience_levelling", "gain_experience reaching a level every call"),
        ("choose_batched", "choose in a caller's session, commit per 100"),
    ):
        if key in rate:
            lines.append(f"{what}: {rate[key]:,.0f}/s")
    if "characters_near" in RESULTS:
        ms = RESULTS["characters_near"] * 1000
        lines.append(f"characters_near over 10^5 characters: {ms:.2f} ms (want <= 5 ms)")
    print_report(request.config, "game bars", lines)


@pytest.fixture(scope="module")
def database(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    with temporary_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        monkeypatch_module.setenv("DATABASE_URL", url)
        monkeypatch_module.setenv("VOXELDB_BCRYPT_ROUNDS", "4")
        monkeypatch_module.delenv("REDIS_URL", raising=False)
        configure(url)
        services.reset_cache()
        try:
            yield url
        finally:
            configure(None)
            services.reset_cache()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def game(database: str) -> Game:
    return make_game("bench")


@pytest.fixture(scope="module")
def bare(database: str) -> Iterator[psycopg.Connection[Any]]:
    """psycopg alone, in autocommit, for the floors."""
    with psycopg.connect(
        database.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        yield conn


def _floor(conn: psycopg.Connection[Any], character_id: Any, durable: bool) -> Callable[[], Any]:
    """One UPDATE of a character in autocommit: a round trip and a commit."""
    sync = "" if durable else " RETURNING set_config('synchronous_commit', 'off', true)"
    sql = f"UPDATE characters SET updated_at = now() WHERE id = %s{sync}"
    return lambda: conn.execute(sql, (character_id,))


def _interleave(
    request: pytest.FixtureRequest, name: str, call: Callable[[], Any], floor: Callable[[], Any]
) -> None:
    """Time ``call`` and ``floor`` alternately, call for call: the same disk, the same load."""
    rounds = 3 if request.config.getoption("benchmark_disable", False) else 2000
    calls, floors = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        middle = time.perf_counter()
        floor()
        calls.append(middle - start)
        floors.append(time.perf_counter() - middle)
    PAIRED[name] = (statistics.median(calls), statistics.median(floors))


LOOP = {
    "start": "camp",
    "nodes": {
        "camp": {
            "text": "The fire crackles.",
            "options": [
                {
                    "id": "train",
                    "text": "Train by the fire",
                    "to": "camp",
                    "conditions": {"stats": {"strength": {"min": 1}}},
                    "effects": {"stats": {"dexterity": 1}},
                },
                {"id": "sleep", "text": "Sleep", "to": "camp"},
            ],
        }
    },
}


@DURABILITY
def test_choose(
    benchmark: Any,
    game: Game,
    bare: psycopg.Connection[Any],
    request: pytest.FixtureRequest,
    durable: bool,
) -> None:
    title = f"Camp {'durable' if durable else 'not durable'}"
    story = services.create_story(game.world.id, title, "loop", branching_data=LOOP)
    story_id, hero_id = story.id, game.hero.id
    services.start_story(story_id, hero_id)
    benchmark(services.choose, story_id, hero_id, "train", durable=durable)
    _record(benchmark, "choose" + _suffix(durable))
    _interleave(
        request,
        "choose" + _suffix(durable),
        lambda: services.choose(story_id, hero_id, "train", durable=durable),
        _floor(bare, game.sage.id, durable),
    )
    assert services.story_state(story_id, hero_id).steps >= 1


def test_choose_batched(benchmark: Any, game: Game) -> None:
    """choose in a caller's session committed every 100 calls (a server's tick)."""
    story = services.create_story(game.world.id, "Camp 2", "loop", branching_data=LOOP)
    story_id, hero_id = story.id, game.sage.id
    session = SessionLocal()
    calls = [0]

    def step() -> None:
        services.choose(story_id, hero_id, "sleep", session=session)
        calls[0] += 1
        if calls[0] % 100 == 0:
            session.commit()
            session.expunge_all()

    try:
        benchmark(step)
        session.commit()
    finally:
        session.close()
    _record(benchmark, "choose_batched")
    assert services.story_state(story_id, hero_id).steps == calls[0]


@DURABILITY
def test_raw_commit(
    benchmark: Any, game: Game, bare: psycopg.Connection[Any], durable: bool
) -> None:
    """The floor: psycopg alone, one UPDATE in autocommit."""
    benchmark(_floor(bare, game.sage.id, durable))
    _record(benchmark, "raw_commit" + _suffix(durable))


def test_raw_transaction(benchmark: Any, game: Game, bare: psycopg.Connection[Any]) -> None:
    """What choose sent before (BEGIN, SELECT ... FOR UPDATE, one write, COMMIT), durable."""

    def transaction() -> None:
        with bare.transaction():
            bare.execute(
                "SELECT stats FROM characters WHERE id = %s FOR UPDATE", (game.hero.id,)
            ).fetchone()
            bare.execute(
                "UPDATE characters SET experience = experience WHERE id = %s", (game.hero.id,)
            )

    benchmark(transaction)
    _record(benchmark, "raw_transaction")


@DURABILITY
def test_gain_experience(
    benchmark: Any,
    game: Game,
    bare: psycopg.Connection[Any],
    request: pytest.FixtureRequest,
    durable: bool,
) -> None:
    sage_id = game.sage.id
    benchmark(services.gain_experience, sage_id, 1, durable=durable)
    _record(benchmark, "gain_experience" + _suffix(durable))
    _interleave(
        request,
        "gain_experience" + _suffix(durable),
        lambda: services.gain_experience(sage_id, 1, durable=durable),
        _floor(bare, game.hero.id, durable),
    )


def test_gain_experience_levelling(
    benchmark: Any, game: Game, request: pytest.FixtureRequest
) -> None:
    """Every gain of 1 reaches a level (a curve of 1 per level, up to 10,000)."""
    curve = {"progression": {"base": 1, "exponent": 0, "max_level": 10_000}}
    world = services.create_world("levelling", curve)
    climber = services.create_character(game.user.id, world.id, "Climber", "monk")
    rounds = 1 if request.config.getoption("benchmark_disable", False) else 3000
    benchmark.pedantic(services.gain_experience, (climber.id, 1), rounds=rounds)
    _record(benchmark, "gain_experience_levelling")
    with SessionLocal() as s:
        climbed = s.get(Character, climber.id)
        assert climbed is not None and climbed.level == 1 + climbed.experience


def test_characters_near(benchmark: Any, request: pytest.FixtureRequest, database: str) -> None:
    count = 1000 if request.config.getoption("benchmark_disable", False) else 100_000
    crowd = services.create_world("crowd", {})
    user = services.create_user("crowd_maker", "crowd@example.com", "correct horse battery")
    engine = make_engine(database)
    try:
        bulk_characters(engine, user.id, crowd.id, count, spread=10_000)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE characters"))
    finally:
        engine.dispose()
    found = benchmark(services.characters_near, crowd.id, 5000.0, 5000.0, 50.0)
    _record(benchmark, "characters_near")
    assert all((c.pos_x - 5000) ** 2 + (c.pos_z - 5000) ** 2 <= 2500 for c in found)  # type: ignore[operator]
