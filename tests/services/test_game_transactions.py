"""The game's hot-path transactions: pooled connections, their recovery, durable=."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, make_game
from voxeldb import services
from voxeldb.meta import Character


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
    with engine.connect() as admin:
        # Every other connection to this database, the pooled ones included, dies.
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    services.gain_experience(game.hero, 1)  # the dead connection is noticed and replaced
    assert _experience(session_local, game) == 2


def test_more_threads_than_pooled_connections(
    game: Game,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    session_local: sessionmaker[Session],
) -> None:
    """Game actions hold no connection between calls: 8 long-lived threads (a server's
    worker pool) on a pool of 2 + 1 all get through. A connection kept per thread left the
    fourth thread waiting for the pool until it timed out."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the pool size applies to PostgreSQL")
    from voxeldb.meta import configure, get_engine

    monkeypatch.setenv("VOXELDB_POOL_SIZE", "2")
    monkeypatch.setenv("VOXELDB_MAX_OVERFLOW", "1")
    configure(get_engine().url)
    workers = 8
    done = threading.Barrier(workers)
    errors: list[BaseException] = []

    def play() -> None:
        try:
            for _ in range(5):
                services.gain_experience(game.hero, 1)
        except BaseException as exc:
            errors.append(exc)
        # Stay alive until every worker has played, as a pooled worker thread does.
        done.wait(timeout=90)

    threads = [threading.Thread(target=play) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert _experience(session_local, game) == 5 * workers


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
