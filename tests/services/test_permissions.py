"""Acting user: as_user= on the services that change characters, stories and worlds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import PW, Game, make_game
from voxeldb import services
from voxeldb.errors import PermissionDeniedError, VoxelDBError
from voxeldb.meta import StoryChoice, User, World


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    services.create_agent("weaver")
    game = make_game()
    with session_local() as s:
        world = s.get(World, game.world.id)
        assert world is not None
        world.created_by = game.user.id  # the player made this world
        s.commit()
    return game


@pytest.fixture
def villain(game: Game) -> User:
    return services.create_user("villain", "villain@example.com", PW)


def _story(game: Game) -> Any:
    return services.create_story(
        game.world.id,
        "s",
        "quest",
        branching_data={"start": {"text": "x", "options": ["a"]}, "a": {}},
    )


CHANGES: dict[str, Callable[[Game, Any], Any]] = {
    "add_item": lambda g, u: services.add_item(g.hero.id, "gold", as_user=u),
    "gain_experience": lambda g, u: services.gain_experience(g.hero, 5, as_user=u),
    "adjust_affinity": lambda g, u: services.adjust_affinity(g.hero, g.sage, 1, as_user=u),
    "start_story": lambda g, u: services.start_story(_story(g), g.hero, as_user=u),
    "choose": lambda g, u: services.choose(_story(g), g.hero, "a", as_user=u),
    "make_choice": lambda g, u: services.make_choice(_story(g).id, g.hero.id, "hi", as_user=u),
    "create_story": lambda g, u: services.create_story(g.world.id, "t", "quest", as_user=u),
    "set_story_graph": lambda g, u: services.set_story_graph(
        _story(g), {"start": "a", "nodes": {"a": {}}}, as_user=u
    ),
    "evolve_story": lambda g, u: services.evolve_story(_story(g), "weaver", {"x": "y"}, as_user=u),
    "run_agent_activity": lambda g, u: services.run_agent_activity(
        "weaver", g.world.id, "t", {}, as_user=u
    ),
    "create_character": lambda g, u: services.create_character(
        g.user.id, g.world.id, "New", "c", as_user=u
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_owner_may_act_others_may_not(game: Game, villain: User, change: str) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        CHANGES[change](game, villain)
    assert isinstance(info.value, PermissionError) and isinstance(info.value, VoxelDBError)
    CHANGES[change](game, game.user)  # the owner: no error
    CHANGES[change](game, str(game.user.id))  # by id too
    CHANGES[change](game, None)  # trusted caller


def test_refused_change_changes_nothing(
    game: Game, villain: User, session_local: sessionmaker[Session]
) -> None:
    story = _story(game)
    with pytest.raises(PermissionDeniedError):
        services.choose(story, game.hero, "a", as_user=villain.id)
    with session_local() as s:
        assert s.scalar(select(StoryChoice)) is None


def test_deactivated_owner_may_not_act(game: Game, session_local: sessionmaker[Session]) -> None:
    with session_local() as s:
        user = s.get(User, game.user.id)
        assert user is not None
        user.is_active = False
        s.commit()
    assert services.check_user_permission(game.user.id, game.hero.id) is False
    with pytest.raises(PermissionDeniedError):
        services.gain_experience(game.hero, 1, as_user=game.user)


def test_world_without_creator_is_for_trusted_code_only(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    orphan = services.create_world("orphan", {})
    assert services.check_user_permission(game.user.id, world_id=orphan.id) is False
    with pytest.raises(PermissionDeniedError):
        services.create_story(orphan.id, "t", "quest", as_user=game.user)
    assert services.create_story(orphan.id, "t", "quest").world_id == orphan.id


def test_check_user_permission_is_the_rule(game: Game, villain: User) -> None:
    story = _story(game)
    assert services.check_user_permission(game.user.id, game.hero.id)
    assert services.check_user_permission(game.user.id, world_id=game.world.id)
    assert services.check_user_permission(game.user.id, story_id=story.id)
    assert not services.check_user_permission(villain.id, story_id=story.id)
    assert not services.check_user_permission(villain.id, game.hero.id)
