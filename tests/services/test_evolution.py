"""World evolution: run_agent_activity keeps evolution_state and bumps version; evolve_story."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, make_game
from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import AIAgentActivity, Story, World, WorldEvolutionLog


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    services.create_agent("weaver", "narrator")
    return make_game()


def _world(session_local: sessionmaker[Session], world_id: uuid.UUID) -> World:
    with session_local() as s:
        world = s.get(World, world_id)
        assert world is not None
        return world


def test_activities_counted_and_version_bumped(
    game: Game, session_local: sessionmaker[Session]
) -> None:
    before = _world(session_local, game.world.id)
    assert before.evolution_state == {}
    first = services.run_agent_activity("weaver", game.world.id, "terrain", {"raised": 3})
    services.run_agent_activity("weaver", game.world.id, "terrain", {}, impact=0.25)
    services.run_agent_activity("weaver", str(game.world.id), "weather", {"rain": True})
    world = _world(session_local, game.world.id)
    assert world.version == before.version + 3
    state = world.evolution_state
    assert state["activity_counts"] == {"terrain": 2, "weather": 1}
    assert state["total_activities"] == 3
    assert state["total_impact"] == pytest.approx(1.25)
    assert [r["activity_type"] for r in state["recent"]] == ["terrain", "terrain", "weather"]
    assert state["recent"][0]["activity_id"] == str(first.id)
    assert state["recent"][1]["impact"] == 0.25
    assert state["recent"][0]["agent"] == "weaver" and state["recent"][0]["at"].endswith("Z")
    with session_local() as s:
        logs = s.scalars(select(WorldEvolutionLog).order_by(WorldEvolutionLog.created_at)).all()
        assert {str(log.id) for log in logs} == {r["log_id"] for r in state["recent"]}
    assert world.last_evolved_at is not None


def test_recent_keeps_the_newest(game: Game, session_local: sessionmaker[Session]) -> None:
    for i in range(services.RECENT_IMPACTS + 5):
        services.run_agent_activity("weaver", game.world.id, "tick", {"i": i})
    state = _world(session_local, game.world.id).evolution_state
    assert len(state["recent"]) == services.RECENT_IMPACTS
    assert state["activity_counts"] == {"tick": services.RECENT_IMPACTS + 5}


def test_impact_validation(game: Game) -> None:
    with pytest.raises(ValidationError) as info:
        services.run_agent_activity("weaver", game.world.id, "x", {}, impact=2)
    assert info.value.field == "impact"


def test_evolve_story(game: Game, session_local: sessionmaker[Session]) -> None:
    story = services.create_story(game.world.id, "Gate", "quest")
    log = services.evolve_story(
        story, "weaver", {"gate": "Who built the gate?", "main": None}, impact=0.8
    )
    assert log.evolution_type == "story_evolution"
    assert log.changes_made == {
        "story_id": str(story.id),
        "before": {"gate": None, "main": "The adventure begins..."},
        "after": {"gate": "Who built the gate?", "main": None},
    }
    with session_local() as s:
        fresh = s.get(Story, story.id)
        assert fresh is not None
        assert fresh.narrative_threads == {"gate": "Who built the gate?"}
        assert fresh.version == story.version + 1
        assert fresh.ai_evolution["last_agent"] == "weaver"
        assert fresh.ai_evolution["evolutions"] == 1
        assert s.scalar(select(AIAgentActivity.activity_type)) == "story_evolution"
    state = _world(session_local, game.world.id).evolution_state
    assert state["activity_counts"] == {"story_evolution": 1}


def test_evolve_story_validation(game: Game) -> None:
    story = services.create_story(game.world.id, "Gate", "quest")
    with pytest.raises(ValidationError) as info:
        services.evolve_story(story, "weaver", {"main": 3})
    assert info.value.field == "threads"
    with pytest.raises(ValidationError) as info:
        services.evolve_story(story, "weaver", {})
    assert info.value.field == "threads"
    with pytest.raises(NotFoundError):
        services.evolve_story(story, "nobody", {"main": "x"})
    with pytest.raises(NotFoundError):
        services.evolve_story(uuid.uuid4(), "weaver", {"main": "x"})
