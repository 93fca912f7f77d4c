"""Progression: gain_experience, the level curve, stat growth, no lost gains (issue 13.2)."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, make_game
from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import Character


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    return make_game()


def test_default_curve() -> None:
    # 100 * 1**1.5 = 100 to level 2; + round(100 * 2**1.5) = 283 to level 3.
    assert services.experience_for_level(1) == 0
    assert services.experience_for_level(2) == 100
    assert services.experience_for_level(3) == 383
    assert services.level_for_experience(99) == 1
    assert services.level_for_experience(100) == 2
    assert services.level_for_experience(382) == 2
    assert services.level_for_experience(383) == 3
    assert services.level_for_experience(10**15) == 100  # max_level


def test_world_settings_override_the_curve() -> None:
    settings = {"progression": {"base": 10, "exponent": 1, "max_level": 5}}
    assert [services.experience_for_level(n, settings) for n in range(1, 6)] == [0, 10, 30, 60, 100]
    assert services.level_for_experience(10**6, settings) == 5
    with pytest.raises(ValidationError, match="base"):
        services.level_for_experience(5, {"progression": {"base": -1}})


def test_gain_levels_and_stats(game: Game, session_local: sessionmaker[Session]) -> None:
    assert services.gain_experience(game.hero.id, 99) == []
    events = services.gain_experience(str(game.hero.id), 300)  # 399: levels 2 and 3
    assert [e.level for e in events] == [2, 3]
    assert events[0].stat_gains == {"strength": 1, "intelligence": 1, "dexterity": 1}
    assert events[0].kind == "level_up"
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        assert (hero.level, hero.experience) == (3, 399)
        assert hero.stats == {"strength": 12, "intelligence": 12, "dexterity": 12}
    assert services.gain_experience(game.hero, 0) == []


def test_world_growth_and_class_growth(session_local: sessionmaker[Session]) -> None:
    settings = {
        "progression": {
            "base": 10,
            "exponent": 0,
            "stat_growth": {"strength": 2},
            "class_growth": {"wizard": {"intelligence": 3}},
        }
    }
    game = make_game("magic", settings)
    events = services.gain_experience(game.sage, 25)  # 10 per level: levels 2 and 3
    assert [(e.level, e.stat_gains) for e in events] == [
        (2, {"strength": 2, "intelligence": 3}),
        (3, {"strength": 2, "intelligence": 3}),
    ]
    assert game.sage.stats == {"strength": 14, "intelligence": 16, "dexterity": 10}
    assert game.sage.level == 3


def test_gain_in_a_callers_session_updates_its_object(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        services.gain_experience(hero.id, 150, session=s)
        assert (hero.experience, hero.level) == (150, 2)
        s.rollback()
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None and hero.experience == 0


@pytest.mark.parametrize(
    ("amount", "field"), [(-1, "amount"), (1.5, "amount"), (True, "amount"), (10**10, "amount")]
)
def test_gain_validation(game: Game, amount: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        services.gain_experience(game.hero.id, amount)  # type: ignore[arg-type]
    assert info.value.field == field


def test_gain_unknown_character(game: Game) -> None:
    with pytest.raises(NotFoundError):
        services.gain_experience(uuid.uuid4(), 5)
    with pytest.raises(ValidationError) as info:
        services.gain_experience("nope", 5)
    assert info.value.field == "character"


@pytest.mark.slow
def test_four_processes_lose_no_experience(
    game: Game, database_url: str, session_local: sessionmaker[Session]
) -> None:
    from tests.services import _game_workers

    ctx = multiprocessing.get_context("spawn")
    procs_n, times, amount = 4, 40, 7
    barrier = ctx.Barrier(procs_n)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_game_workers.gain,
            args=(database_url, str(game.hero.id), times, amount, barrier, out),
        )
        for _ in range(procs_n)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(kind == "ok" for kind, _ in results), results
    total = procs_n * times * amount
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        assert hero.experience == total
        level = services.level_for_experience(total)
        assert hero.level == level
        # Every level reached exactly once across the processes, its growth applied once.
        assert sum(n for _, n in results) == level - 1
        assert hero.stats["strength"] == 10 + (level - 1)
