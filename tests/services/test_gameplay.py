"""Characters, items, stories, choices, agents and permissions through voxeldb.services."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import AIAgentActivity, InventoryItem, StoryChoice, WorldEvolutionLog

PW = "correct horse battery"


@pytest.fixture
def setup(session_local: sessionmaker[Session]) -> dict[str, Any]:
    user = services.create_user("hero", "hero@example.com", PW)
    world = services.create_world("realm", {})
    return {"user": user, "world": world}


def test_create_character_and_items(setup: dict[str, Any]) -> None:
    user, world = setup["user"], setup["world"]
    character = services.create_character(str(user.id), str(world.id), "Merlin", "wizard")
    assert character.user_id == user.id and character.world_id == world.id
    assert character.stats == {"strength": 10, "intelligence": 10, "dexterity": 10}
    assert character.position == {"x": 0, "y": 64, "z": 0}
    item = services.add_item(character.id, "oak_planks", 16)
    assert (item.item_type, item.item_name, item.quantity) == ("material", "oak_planks", 16)
    assert services.add_item(str(character.id), "torch").quantity == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"name": ""}, "name", ValidationError),
        ({"name": "x" * 101}, "name", ValidationError),
        ({"char_class": ""}, "char_class", ValidationError),
        ({"user_id": "nope"}, "user_id", ValidationError),
        ({"user_id": str(uuid.UUID(int=1))}, "user_id", NotFoundError),
        ({"world_id": uuid.UUID(int=2)}, "world_id", NotFoundError),
    ],
)
def test_create_character_validation(
    setup: dict[str, Any], kwargs: dict[str, Any], field: str, error: type[Exception]
) -> None:
    args = {
        "user_id": setup["user"].id,
        "world_id": setup["world"].id,
        "name": "n",
        "char_class": "c",
        **kwargs,
    }
    with pytest.raises(error) as info:
        services.create_character(**args)
    assert info.value.field == field  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("item_name", "quantity", "field"),
    [
        ("", 1, "item_name"),
        ("wood", 0, "quantity"),
        ("wood", -3, "quantity"),
        ("wood", 1.5, "quantity"),
        ("wood", 10**7, "quantity"),
    ],
)
def test_add_item_validation(
    setup: dict[str, Any],
    session_local: sessionmaker[Session],
    item_name: str,
    quantity: Any,
    field: str,
) -> None:
    character = services.create_character(setup["user"].id, setup["world"].id, "n", "c")
    with pytest.raises(ValidationError) as info:
        services.add_item(character.id, item_name, quantity)
    assert info.value.field == field
    with session_local() as s:
        assert s.scalar(select(InventoryItem)) is None


def test_check_user_permission(setup: dict[str, Any]) -> None:
    owner = setup["user"]
    other = services.create_user("villain", "villain@example.com", PW)
    character = services.create_character(owner.id, setup["world"].id, "n", "c")
    assert services.check_user_permission(str(owner.id), str(character.id)) is True
    assert services.check_user_permission(owner.id, character.id) is True
    assert services.check_user_permission(str(other.id), str(character.id)) is False
    assert services.check_user_permission(owner.id, uuid.uuid4()) is False
    with pytest.raises(ValidationError, match="character_id"):
        services.check_user_permission(owner.id, "1 OR 1=1")


def test_story_and_choices(setup: dict[str, Any], session_local: sessionmaker[Session]) -> None:
    world = setup["world"]
    story = services.create_story(str(world.id), "The Lost Tower", "quest")
    assert story.narrative_threads == {"main": "The adventure begins..."}
    character = services.create_character(setup["user"].id, world.id, "n", "c")
    first = services.make_choice(story.id, character.id, "Open the door")
    second = services.make_choice(str(story.id), str(character.id), "Climb the stairs")
    assert (first.choice_order, second.choice_order) == (1, 2)
    with session_local() as s:
        texts = s.scalars(select(StoryChoice.choice_text).order_by(StoryChoice.choice_order)).all()
    assert texts == ["Open the door", "Climb the stairs"]
    elsewhere = services.create_world("elsewhere", {})
    stranger = services.create_character(setup["user"].id, elsewhere.id, "s", "c")
    with pytest.raises(ValidationError, match="world"):
        services.make_choice(story.id, stranger.id, "Wave")
    with pytest.raises(ValidationError) as info:
        services.make_choice(story.id, character.id, "")
    assert info.value.field == "choice_text"
    with pytest.raises(ValidationError) as info:
        services.create_story(world.id, "t" * 201, "quest")
    assert info.value.field == "title"
    with pytest.raises(NotFoundError):
        services.make_choice(uuid.uuid4(), character.id, "x")


def test_run_agent_activity(setup: dict[str, Any], session_local: sessionmaker[Session]) -> None:
    world = setup["world"]
    services.create_agent("world_builder", "builder", {"speed": 2})
    activity = services.run_agent_activity(
        "world_builder", str(world.id), "terrain", {"raised": [1, 2, 3]}
    )
    assert activity.results == {"status": "completed"}
    assert activity.activity_data == {"raised": [1, 2, 3]}
    with session_local() as s:
        log = s.scalars(select(WorldEvolutionLog)).one()
        assert (log.evolution_type, log.changes_made, log.impact_score) == (
            "terrain",
            {"raised": [1, 2, 3]},
            0.5,
        )
        assert s.scalar(select(AIAgentActivity.world_id)) == world.id
    with pytest.raises(NotFoundError) as info:
        services.run_agent_activity("nobody", world.id, "terrain", {})
    assert info.value.field == "agent_name"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as info2:
        services.run_agent_activity("world_builder", world.id, "terrain", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert info2.value.field == "data"
    with pytest.raises(ValidationError, match="agent_name"):
        services.create_agent("world_builder")
    with pytest.raises(ValidationError, match=r"^agent_type") as info3:
        services.create_agent("terraformer", "")
    assert info3.value.field == "agent_type"
