"""The game's hot path: choose and gain_experience on a hint of the character's last call.

On PostgreSQL a call assumes what the character's last one left (its place, its row, the
story's version, the world's curve) and checks it in its one statement. These tests change
each of those behind its back and see the call act on the database, never on the hint.
On SQLite (no hints) they are plain behaviour tests.
"""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, make_game
from voxeldb import services
from voxeldb.errors import NotFoundError, PermissionDeniedError, ValidationError
from voxeldb.meta import Character, InventoryItem, Story, StoryChoice, User, World

LOOP = {
    "start": "camp",
    "nodes": {
        "camp": {
            "text": "The fire crackles.",
            "options": [
                {
                    "id": "train",
                    "text": "Train",
                    "to": "camp",
                    "conditions": {"stats": {"strength": {"min": 10}}},
                    "effects": {"stats": {"dexterity": 1}, "experience": 60},
                },
                {"id": "sleep", "text": "Sleep", "to": "camp"},
                {"id": "leave", "text": "Leave", "to": "road"},
                {
                    "id": "forage",
                    "text": "Forage",
                    "to": "camp",
                    "effects": {"items": {"berry": 1}},
                },
            ],
        },
        "road": {"text": "A road.", "options": [{"id": "back", "text": "Back", "to": "camp"}]},
    },
}


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    game = make_game()
    with session_local() as s:
        world = s.get(World, game.world.id)
        assert world is not None
        world.created_by = game.user.id  # the player made this world
        s.commit()
    return game


def _loop(game: Game) -> Any:
    return services.create_story(game.world.id, "Loop", "quest", branching_data=LOOP)


def _hero(session_local: sessionmaker[Session], game: Game) -> Character:
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        return hero


def _set_hero(session_local: sessionmaker[Session], game: Game, **values: Any) -> None:
    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        for key, value in values.items():
            setattr(hero, key, value)
        s.commit()


def _grown(experience: int) -> int:
    """What each default stat has gained by levels at ``experience``."""
    return services.level_for_experience(experience) - 1


def test_repeated_choices_count_and_apply(game: Game, session_local: sessionmaker[Session]) -> None:
    story = _loop(game)
    for n in range(1, 6):
        choice = services.choose(story, game.hero, "train", durable=n % 2 == 0)
        assert choice.choice_order == n
        assert choice.consequences["effects"] == {"stats": {"dexterity": 1}, "experience": 60}
        assert choice.consequences["level_ups"] == ([2] if n == 2 else [])
    hero = _hero(session_local, game)
    assert hero.experience == 300 and hero.level == 2
    assert hero.stats == {"strength": 11, "intelligence": 11, "dexterity": 16}
    with session_local() as s:
        orders = s.scalars(select(StoryChoice.choice_order).order_by(StoryChoice.choice_order))
        assert list(orders) == [1, 2, 3, 4, 5]


def test_a_stat_changed_elsewhere_is_seen(game: Game, session_local: sessionmaker[Session]) -> None:
    story = _loop(game)
    services.choose(story, game.hero, "train")
    _set_hero(session_local, game, stats={"strength": 3})  # below the option's min
    with pytest.raises(ValidationError, match="strength") as info:
        services.choose(story, game.hero, "train")
    assert info.value.field == "option"
    _set_hero(session_local, game, stats={"strength": 30})
    services.choose(story, game.hero, "train")  # 120 experience: level 2
    stats = {"strength": 31, "dexterity": 2, "intelligence": 1}
    assert _hero(session_local, game).stats == stats


def test_a_place_changed_elsewhere_is_seen(game: Game) -> None:
    story = _loop(game)
    services.choose(story, game.hero, "leave")
    services.choose(story, game.hero, "back")
    services.start_story(story, game.hero, restart=True)  # back at camp, no steps
    assert services.choose(story, game.hero, "sleep").choice_order == 1
    services.choose(story, game.hero, "leave")
    with pytest.raises(ValidationError, match="not an option at node 'road'"):
        services.choose(story, game.hero, "leave")


def test_a_graph_changed_elsewhere_is_seen(game: Game) -> None:
    story = _loop(game)
    services.choose(story, game.hero, "sleep")
    changed = {"start": "camp", "nodes": {"camp": {"text": "Ash.", "options": ["rest"]}}}
    changed["nodes"]["rest"] = {"text": "Rested.", "options": []}
    services.set_story_graph(story, changed)
    with pytest.raises(ValidationError, match="'sleep' is not an option"):
        services.choose(story, game.hero, "sleep")
    assert services.choose(story, game.hero, "rest").consequences["to"] == "rest"


def test_a_deleted_story_is_unknown(game: Game, session_local: sessionmaker[Session]) -> None:
    story = _loop(game)
    services.choose(story, game.hero, "sleep")
    with session_local() as s:
        s.delete(s.get(Story, story.id))
        s.commit()
    with pytest.raises(NotFoundError) as info:
        services.choose(story, game.hero, "sleep")
    assert info.value.field == "story"  # type: ignore[attr-defined]


def _deactivate(session_local: sessionmaker[Session], game: Game) -> None:
    """The game's user made inactive behind the services' back."""
    with session_local() as s:
        user = s.get(User, game.user.id)
        assert user is not None
        user.is_active = False
        s.commit()


def test_a_user_deactivated_elsewhere_is_refused(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    story = _loop(game)
    services.choose(story, game.hero, "sleep", as_user=game.user)
    services.gain_experience(game.hero, 1, as_user=game.user)
    services.gain_experience(game.hero, 1, as_user=game.user)
    _deactivate(session_local, game)
    with pytest.raises(PermissionDeniedError):
        services.choose(story, game.hero, "sleep", as_user=game.user)
    with pytest.raises(PermissionDeniedError):
        services.gain_experience(game.hero, 1, as_user=game.user)
    assert _hero(session_local, game).experience == 2


def test_a_level_set_elsewhere_is_seen(game: Game, session_local: sessionmaker[Session]) -> None:
    services.gain_experience(game.hero, 10)
    services.gain_experience(game.hero, 10)
    _set_hero(session_local, game, level=5)  # 20 experience, yet level 5 (an operator's edit)
    assert services.gain_experience(game.hero, 10) == []
    assert _hero(session_local, game).level == 5
    _set_hero(session_local, game, level=1)
    assert [e.level for e in services.gain_experience(game.hero, 70)] == [2]  # 100: level 2


def test_a_curve_changed_elsewhere_is_seen(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    services.gain_experience(game.hero, 10)
    services.gain_experience(game.hero, 10)
    settings = services.get_world_settings(game.world.id)
    settings["progression"] = {"base": 5, "exponent": 0}
    services.update_world_settings(game.world.id, settings)
    # 25 experience at 5 a level: level 6 at once.
    assert [e.level for e in services.gain_experience(game.hero, 5)] == [2, 3, 4, 5, 6]
    assert _hero(session_local, game).level == 6


def test_the_first_call_of_a_process_returns_a_story_choice(game: Game, database_url: str) -> None:
    """A process whose first ORM object is choose's StoryChoice (nothing had set the mappers
    up: the object could not be made)."""
    story = _loop(game)
    code = (
        "import sys; from voxeldb import services; from voxeldb.meta import configure;"
        "configure(sys.argv[1]);"
        "c = services.choose(sys.argv[2], sys.argv[3], 'sleep');"
        "c.consequences['seen'] = True;"
        "print(c.choice_order, type(c).__name__, type(c.consequences).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, database_url, str(story.id), str(game.hero.id)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "StoryChoice", "MutableDict"]


def test_a_returned_choice_tracks_changes_in_a_session(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    choice = services.choose(_loop(game), game.hero, "sleep")
    with session_local() as s:
        mine = s.merge(choice)
        mine.consequences["note"] = "kept"
        s.commit()
    with session_local() as s:
        again = s.get(StoryChoice, choice.id)
        assert again is not None and again.consequences["note"] == "kept"


@pytest.mark.slow
@pytest.mark.parametrize("option", ["train", "forage"])  # the hot path; the Core path
def test_four_processes_choosing_lose_and_repeat_no_step(
    game: Game, database_url: str, session_local: sessionmaker[Session], option: str
) -> None:
    """Four processes take steps for one character at once, from its first step on: each
    step starts from where the one before left it (PostgreSQL used to let two start from
    the same place: a choice_order twice, a step lost)."""
    from tests.services import _game_workers

    story = _loop(game)
    ctx = multiprocessing.get_context("spawn")
    procs_n, times = 4, 25
    barrier = ctx.Barrier(procs_n)
    out = ctx.Queue()
    args = (database_url, str(story.id), str(game.hero.id), option, times, barrier, out)
    procs = [ctx.Process(target=_game_workers.choose, args=args) for _ in range(procs_n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(kind == "ok" for kind, _ in results), results
    total = procs_n * times
    assert services.story_state(story, game.hero).steps == total
    with session_local() as s:
        orders = s.scalars(select(StoryChoice.choice_order).order_by(StoryChoice.choice_order))
        assert list(orders) == list(range(1, total + 1))
        berries = s.scalar(
            select(func.sum(InventoryItem.quantity)).where(InventoryItem.item_name == "berry")
        )
    hero = _hero(session_local, game)
    if option == "train":
        assert hero.experience == 60 * total
        assert hero.level == services.level_for_experience(60 * total)
        assert hero.stats["dexterity"] == 10 + total + _grown(60 * total)
    else:
        assert berries == total


def test_a_lost_connection_is_replaced_for_choose(
    game: Game, engine: Engine, session_local: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are not lost to a server")
    story = _loop(game)
    services.choose(story, game.hero, "sleep")
    with engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert services.choose(story, game.hero, "sleep").choice_order == 2


def test_a_one_statement_action_checks_out_nothing_from_the_engine_pool(
    game: Game, engine: Engine
) -> None:
    """A step or a gain on a hint is one autocommit statement: it runs on the read pool's
    connections, without the engine pool's checkout (its wrapper, events and reset)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the direct path is PostgreSQL's")
    from sqlalchemy import event

    from voxeldb.meta import get_engine

    story = _loop(game)
    services.choose(story, game.hero, "sleep")  # a read first: the hint is left
    services.gain_experience(game.hero, 1)  # the same
    checkouts: list[object] = []

    def count(*_: object) -> None:
        checkouts.append(1)

    pool_engine = get_engine()
    event.listen(pool_engine, "checkout", count)
    try:
        services.choose(story, game.hero, "sleep")
        services.gain_experience(game.hero, 1)
    finally:
        event.remove(pool_engine, "checkout", count)
    assert checkouts == []
    assert services.story_state(story, game.hero).steps == 2


def test_slow_statements_are_logged(
    game: Game,
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from voxeldb.meta import configure

    monkeypatch.setenv("VOXELDB_SLOW_QUERY_MS", "0")
    configure(database_url)  # a new engine reads the threshold
    story = _loop(game)
    with caplog.at_level(logging.WARNING, logger="voxeldb.slow_query"):
        services.choose(story, game.hero, "sleep")  # a read, then the step
        assert len(caplog.records) >= 2
        caplog.clear()
        services.choose(story, game.hero, "sleep")  # the step
        services.gain_experience(game.hero, 1)
        assert len(caplog.records) >= 2
    assert all(r.getMessage().startswith("Slow query: ") for r in caplog.records)


def test_create_world_as_user_makes_its_creator(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    mine = services.create_world("mine", {}, as_user=game.user)
    assert mine.created_by == game.user.id
    assert services.check_user_permission(game.user.id, world_id=mine.id)
    stranger = services.create_user("stranger", "stranger@example.com", "another long passphrase")
    assert not services.check_user_permission(stranger.id, world_id=mine.id)
    assert services.create_world("trusted", {}).created_by is None


def test_create_world_refuses_an_inactive_or_unknown_user(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    _deactivate(session_local, game)
    with pytest.raises(PermissionDeniedError):
        services.create_world("nope", {}, as_user=game.user)
    with pytest.raises(PermissionDeniedError):
        services.create_world("nope", {}, as_user="00000000-0000-0000-0000-000000000001")
    with pytest.raises(ValidationError) as info:
        services.create_world("nope", {}, as_user="not an id")
    assert info.value.field == "as_user"
    with pytest.raises(NotFoundError):
        services.resolve_world(None, "nope")


def test_update_world_settings_as_user(game: Game) -> None:
    stranger = services.create_user("stranger", "stranger@example.com", "another long passphrase")
    with pytest.raises(PermissionDeniedError):
        services.update_world_settings(game.world.id, {"height": 384}, as_user=stranger)
    assert "pvp" not in services.get_world_settings(game.world.id)
    services.update_world_settings(game.world.id, {"pvp": True}, as_user=game.user)
    assert services.get_world_settings(game.world.id)["pvp"] is True
    orphan = services.create_world("orphan", {})
    with pytest.raises(PermissionDeniedError):
        services.update_world_settings(orphan.id, {}, as_user=game.user)
    services.update_world_settings(orphan.id, {"pvp": False})  # trusted code
