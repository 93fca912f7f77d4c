"""The game services' throughput on PostgreSQL (issue 13's bars), one process.

Run: ``pytest benchmarks/test_game_bench.py --benchmark-only --benchmark-columns=median,ops``.
The figures against the bars are printed at the end of the run (the "game bars" section).
With ``--benchmark-disable`` every benchmark runs once on small inputs, as a test.

- ``choose``: one choice per call (its own transaction: the character locked, the option's
  conditions checked, a StoryChoice recorded, the place moved, a stat effect applied).
  Wanted: >= 2,000 calls/s.
- ``gain_experience``: one gain per call (its own transaction). Wanted: >= 2,000 calls/s.
- ``choose_batched``: the same in a caller's session committed every 100 calls (how a game
  server's tick would call it), for comparison.
- ``raw_transaction``: psycopg alone doing the round trips a choose needs (BEGIN, SELECT
  ... FOR UPDATE, one write, COMMIT): the floor under ``choose`` on this machine.
- ``characters_near``: radius 50 around a point, with 10^5 characters in the world.
  Wanted: <= 5 ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from tests._services import temporary_postgres_database
from tests.services._game import Game, bulk_characters, make_game

from benchmarks._report import print_report
from voxeldb import services
from voxeldb._engine import make_engine
from voxeldb.meta import SessionLocal, configure, upgrade

RESULTS: dict[str, float] = {}


def _record(benchmark: Any, name: str) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        RESULTS[name] = float(stats.stats.median)


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    for name, bar in (
        ("choose", 2000.0),
        ("choose_not_durable", 2000.0),
        ("gain_experience", 2000.0),
        ("gain_experience_not_durable", 2000.0),
    ):
        if name in RESULTS:
            rate = 1.0 / RESULTS[name]
            lines.append(
                f"{name}: {rate:,.0f} calls/s (want >= {bar:,.0f}): {rate / bar:.2f}x the bar"
            )
    if "choose_batched" in RESULTS:
        rate = 1.0 / RESULTS["choose_batched"]
        lines.append(f"choose in a caller's session, commit per 100: {rate:,.0f} calls/s")
    if {"choose", "raw_transaction"} <= RESULTS.keys():
        lines.append(
            "choose / a bare psycopg transaction of the same round trips: "
            f"{RESULTS['raw_transaction'] / RESULTS['choose']:.2f} "
            f"(the bare one: {1.0 / RESULTS['raw_transaction']:,.0f}/s)"
        )
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


def test_choose(benchmark: Any, game: Game) -> None:
    story = services.create_story(game.world.id, "Camp", "loop", branching_data=LOOP)
    story_id, hero_id = story.id, game.hero.id
    services.start_story(story_id, hero_id)
    benchmark(services.choose, story_id, hero_id, "train")
    _record(benchmark, "choose")
    assert services.story_state(story_id, hero_id).steps >= 1


def test_choose_not_durable(benchmark: Any, game: Game) -> None:
    """choose with durable=False: the commit does not wait for the disk."""
    story = services.create_story(game.world.id, "Camp 3", "loop", branching_data=LOOP)
    story_id, hero_id = story.id, game.hero.id
    services.start_story(story_id, hero_id)
    benchmark(services.choose, story_id, hero_id, "train", durable=False)
    _record(benchmark, "choose_not_durable")
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


def test_raw_transaction(benchmark: Any, game: Game, database: str) -> None:
    """The floor under choose: psycopg alone, the same round trips (BEGIN, SELECT ... FOR
    UPDATE, one write, COMMIT), waiting for the disk at commit as choose does by default."""
    dsn = database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:

        def transaction() -> None:
            conn.execute(
                "SELECT stats FROM characters WHERE id = %s FOR UPDATE",
                (game.hero.id,),
            ).fetchone()
            conn.execute(
                "UPDATE characters SET experience = experience WHERE id = %s", (game.hero.id,)
            )
            conn.commit()

        benchmark(transaction)
    _record(benchmark, "raw_transaction")


def test_gain_experience(benchmark: Any, game: Game) -> None:
    sage_id = game.sage.id
    benchmark(services.gain_experience, sage_id, 1)
    _record(benchmark, "gain_experience")


def test_gain_experience_not_durable(benchmark: Any, game: Game) -> None:
    sage_id = game.sage.id
    benchmark(services.gain_experience, sage_id, 1, durable=False)
    _record(benchmark, "gain_experience_not_durable")
    assert services.level_for_experience(1) == 1


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
