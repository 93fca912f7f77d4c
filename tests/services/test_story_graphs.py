"""Stories as graphs: start_story, available_choices, choose, set_story_graph (issue 13.1)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, gate_graph, make_game
from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import Character, InventoryItem, StoryChoice, StoryProgress


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    return make_game()


def _story(game: Game) -> Any:
    return services.create_story(
        game.world.id, "The Sunken Gate", "quest", branching_data=gate_graph(str(game.sage.id))
    )


def ids(options: list[services.StoryOption]) -> list[str]:
    return [o.id for o in options]


def test_walk_a_story(game: Game, session_local: sessionmaker[Session]) -> None:
    story = _story(game)
    progress = services.start_story(story, game.hero)
    assert (progress.node, progress.steps) == ("gate", 0)
    # strength 10 < 12, no key: only the unconditioned options.
    assert ids(services.available_choices(story, game.hero)) == ["train", "flee"]

    choice = services.choose(story.id, game.hero.id, "train")
    assert choice.choice_order == 1
    assert choice.consequences["from"] == "gate" and choice.consequences["to"] == "gate"
    assert choice.consequences["level_ups"] == [2]
    # strength 10 + 1 (train) + 1 (level 2) = 12: the gate can be forced now, and a key held.
    assert ids(services.available_choices(story, game.hero)) == ["open", "key", "train", "flee"]

    choice = services.choose(story, game.hero, "Use the key")  # by text, too
    assert (choice.choice_order, choice.choice_text) == (2, "Use the key")
    state = services.story_state(story, game.hero)
    assert (state.node, state.steps, state.text) == ("hall", 2, "A hall of echoes.")
    assert ids(state.choices) == ["ask"]
    services.choose(story, game.hero, "ask")
    state = services.story_state(story, game.hero)
    assert state.node == "end" and state.ended

    with session_local() as s:
        hero = s.get(Character, game.hero.id)
        assert hero is not None
        # train: strength +1; level 2: +1 each (the default growth).
        assert hero.stats == {"strength": 12, "intelligence": 11, "dexterity": 11}
        assert (hero.level, hero.experience) == (2, 150)
        assert s.scalar(select(InventoryItem).where(InventoryItem.item_name == "key")) is None
        orders = s.scalars(
            select(StoryChoice.choice_order)
            .where(StoryChoice.character_id == game.hero.id)
            .order_by(StoryChoice.choice_order)
        ).all()
        assert orders == [1, 2, 3]
        progress = s.get(StoryProgress, (story.id, game.hero.id))
        assert progress is not None and (progress.node, progress.steps) == ("end", 3)
    rel = services.relationship_between(game.hero, game.sage)
    assert rel is not None and rel.affinity == 15.0


def test_unavailable_option_is_refused_by_name(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    story = _story(game)
    with pytest.raises(ValidationError, match=r"'open' is not available.*strength") as info:
        services.choose(story, game.hero, "open")
    assert info.value.field == "option"
    with pytest.raises(ValidationError, match=r"'dance' is not an option at node 'gate'") as info:
        services.choose(story, game.hero, "dance")
    assert info.value.field == "option"
    with session_local() as s:
        assert s.scalar(select(StoryChoice)) is None
        assert s.scalar(select(StoryProgress)) is None


def test_choose_starts_the_story_and_ends(game: Game) -> None:
    story = _story(game)
    services.choose(story, game.hero, "flee")
    assert services.available_choices(story, game.hero) == []
    with pytest.raises(ValidationError, match="it is an ending"):
        services.choose(story, game.hero, "flee")


def test_start_again(game: Game) -> None:
    story = _story(game)
    services.choose(story, game.hero, "flee")
    assert services.start_story(story, game.hero).node == "flee"
    assert services.start_story(story, game.hero, restart=True).node == "gate"
    assert ids(services.available_choices(story, game.hero))[-1] == "flee"


def test_passed_character_shows_the_effects(game: Game) -> None:
    story = _story(game)
    hero = game.hero
    services.choose(story, hero, "train")
    assert hero.stats["strength"] == 12 and hero.level == 2 and hero.experience == 150


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        ({"start": "nowhere", "nodes": {"a": {"text": "x"}}}, "start node 'nowhere'"),
        (
            {
                "start": "a",
                "nodes": {"a": {"text": "x", "options": [{"id": "o", "text": "t", "to": "b"}]}},
            },
            "leads to 'b'",
        ),
        (
            {"start": "a", "nodes": {"a": {"text": "x", "options": ["b", "b"]}, "b": {}}},
            "two options",
        ),
        (
            {
                "start": "a",
                "nodes": {
                    "a": {
                        "options": [
                            {"id": "o", "text": "t", "to": "a", "effects": {"stats": {"s": "x"}}}
                        ]
                    }
                },
            },
            "stats",
        ),
        (
            {
                "start": "a",
                "nodes": {
                    "a": {
                        "options": [
                            {
                                "id": "o",
                                "text": "t",
                                "to": "a",
                                "conditions": {"relationships": {"bob": {"min": 1}}},
                            }
                        ]
                    }
                },
            },
            "not a character id",
        ),
        ({"start": "a", "nodes": {}}, "nodes"),
        ([1, 2], "must be a dict"),
    ],
)
def test_invalid_graphs(game: Game, graph: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as info:
        services.create_story(game.world.id, "t", "quest", branching_data=graph)
    assert info.value.field == "branching_data"
    story = services.create_story(game.world.id, "ok", "quest")
    with pytest.raises(ValidationError, match=words):
        services.set_story_graph(story, graph)


def test_sample_data_flat_graph_plays(game: Game) -> None:
    # The sample data's shape: node ids at the top level, options as node ids.
    flat = {
        "start": {"text": "A gate rises.", "options": ["open", "flee"]},
        "open": {"text": "Light.", "options": []},
        "flee": {"text": "Gone.", "options": []},
    }
    story = services.create_story(game.world.id, "flat", "quest", branching_data=flat)
    assert ids(services.available_choices(story, game.hero)) == ["open", "flee"]
    assert services.choose(story, game.hero, "open").consequences["to"] == "open"


def test_graph_changed_under_a_character(game: Game) -> None:
    story = _story(game)
    services.choose(story, game.hero, "flee")
    new = services.set_story_graph(story, {"start": "a", "nodes": {"a": {"text": "x"}}})
    assert new.version == story.version + 1
    with pytest.raises(ValidationError, match="no node 'flee'"):
        services.available_choices(story, game.hero)


def test_choose_refuses_strangers_and_unknowns(game: Game) -> None:
    story = _story(game)
    elsewhere = services.create_world("elsewhere", {})
    stranger = services.create_character(game.user.id, elsewhere.id, "S", "c")
    with pytest.raises(ValidationError, match="story's world") as info:
        services.choose(story, stranger, "flee")
    assert info.value.field == "character"
    with pytest.raises(NotFoundError) as nf:
        services.choose(uuid.uuid4(), game.hero, "flee")
    assert nf.value.field == "story"  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError) as nf:
        services.choose(story, uuid.uuid4(), "flee")
    assert nf.value.field == "character"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as info:
        services.choose(story, game.hero, "")
    assert info.value.field == "option"


def test_choose_in_a_callers_session_rolls_back(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    story = _story(game)
    with session_local() as s:
        services.choose(story.id, game.hero.id, "train", session=s)
        assert services.story_state(story.id, game.hero.id, session=s).steps == 1
        s.rollback()
    assert services.story_state(story, game.hero).steps == 0
    with session_local() as s:
        assert s.scalar(select(InventoryItem)) is None


def test_make_choice_still_works(game: Game) -> None:
    story = _story(game)
    first = services.make_choice(story.id, game.hero.id, "Wave at the gate")
    assert first.choice_order == 1
    assert services.story_state(story, game.hero).node == "gate"  # free text does not move
