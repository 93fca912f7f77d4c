"""The game's hot-path transactions: the thread's held connection, its recovery, durable=."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, make_game
from voxeldb import services
from voxeldb.meta import Character
from voxeldb.services import _txn


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    return make_game()


def _experience(session_local: sessionmaker[Session], game: Game) -> int:
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        return hero.experience


def test_durable_and_not(game: Game, session_local: sessionmaker[Session]) -> None:
    services.gain_experience(game.hero, 5)
    services.gain_experience(game.hero, 5, durable=False)
    assert _experience(session_local, game) == 10
    choice = services.choose(
        services.create_story(
            game.world.id, "s", "q", branching_data={"start": {"options": ["a"]}, "a": {}}
        ),
        game.hero,
        "a",
        durable=False,
    )
    assert choice.choice_order == 1


def test_a_lost_connection_is_replaced(
    game: Game, engine: Engine, session_local: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are not lost to a server")
    services.gain_experience(game.hero, 1)
    held = _txn._local.held[2]
    pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    held.rollback()
    with engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    services.gain_experience(game.hero, 1)  # the dead connection is noticed and replaced
    assert _txn._local.held[2] is not held
    assert _experience(session_local, game) == 2


def test_an_error_rolls_back_and_the_connection_stays_usable(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    story = services.create_story(
        game.world.id, "s", "q", branching_data={"start": {"options": ["a"]}, "a": {}}
    )
    with pytest.raises(services.UnknownIdError):
        services.gain_experience("00000000-0000-0000-0000-000000000001", 1)
    with pytest.raises(ValueError, match="not an option"):
        services.choose(story, game.hero, "b")
    services.choose(story, game.hero, "a")
    assert services.story_state(story, game.hero).node == "a"
