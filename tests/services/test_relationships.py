"""Relationships (directed affinity) and characters_near (issue 13.4)."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.services._game import Game, bulk_characters, make_game
from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import Character


@pytest.fixture
def game(session_local: sessionmaker[Session]) -> Game:
    return make_game()


def test_affinity_is_directed(game: Game) -> None:
    rel = services.adjust_affinity(game.hero, game.sage, 20, "friend")
    assert (rel.character_id, rel.target_character_id, rel.affinity) == (
        game.hero.id,
        game.sage.id,
        20.0,
    )
    assert rel.relationship_type == "friend"
    assert services.relationship_between(game.sage, game.hero) is None
    rel = services.adjust_affinity(game.hero.id, str(game.sage.id), -5.5, "friend")
    assert rel.affinity == 14.5
    back = services.adjust_affinity(game.sage, game.hero, -30, "rival")
    between = services.relationship_between(game.hero, game.sage)
    assert between is not None and between.affinity == 14.5
    assert services.relationship_between(game.hero, game.sage, "rival") is None
    mine = services.relationships_of(game.hero)
    assert [(r.character_id, r.affinity) for r in mine] == [
        (game.hero.id, 14.5),
        (game.sage.id, -30.0),
    ]
    assert back.id in {r.id for r in services.relationships_of(game.sage)}


def test_affinity_is_clamped(game: Game) -> None:
    assert services.adjust_affinity(game.hero, game.sage, 150).affinity == 100.0
    assert services.adjust_affinity(game.hero, game.sage, 10).affinity == 100.0
    assert services.adjust_affinity(game.hero, game.sage, -500).affinity == -100.0


def test_affinity_validation(game: Game) -> None:
    with pytest.raises(ValidationError) as info:
        services.adjust_affinity(game.hero, game.hero, 1)
    assert info.value.field == "b"
    with pytest.raises(ValidationError) as info:
        services.adjust_affinity(game.hero, game.sage, float("nan"))
    assert info.value.field == "delta"
    with pytest.raises(ValidationError) as info:
        services.adjust_affinity(game.hero, game.sage, 1, "")
    assert info.value.field == "relationship_type"
    with pytest.raises(NotFoundError):
        services.adjust_affinity(game.hero, uuid.uuid4(), 1)
    other = services.create_world("other", {})
    stranger = services.create_character(game.user.id, other.id, "S", "c")
    with pytest.raises(ValidationError, match="different worlds"):
        services.adjust_affinity(game.hero, stranger, 1)
    with pytest.raises(NotFoundError):
        services.relationships_of(uuid.uuid4())


def _place(session_local: sessionmaker[Session], character: Character, x: float, z: float) -> None:
    with session_local() as s:
        obj = s.get(Character, character.id)
        assert obj is not None
        obj.position["x"] = x  # in place: tracked, pos_x follows
        obj.position["z"] = z
        s.commit()


def test_characters_near(game: Game, session_local: sessionmaker[Session]) -> None:
    _place(session_local, game.hero, 100, 100)
    _place(session_local, game.sage, 103, 104)  # 5 away
    far = services.create_character(game.user.id, game.world.id, "Far", "c")
    _place(session_local, far, 104, 104)  # in the box of radius 5, outside the circle
    near = services.characters_near(game.world, 100, 100, 5)
    assert [c.name for c in near] == ["Hero", "Sage"]
    assert [c.name for c in services.characters_near(game.world.id, 104, 104, 0.5)] == ["Far"]
    assert [c.name for c in services.characters_near(game.world, 100, 100, 10, limit=1)] == ["Hero"]
    other = services.create_world("other", {})
    assert services.characters_near(other, 100, 100, 50) == []
    with pytest.raises(ValidationError) as info:
        services.characters_near(game.world, 0, 0, -1)
    assert info.value.field == "radius"


def test_characters_near_many(
    game: Game, engine: Engine, session_local: sessionmaker[Session]
) -> None:
    bulk_characters(engine, game.user.id, game.world.id, 3000, spread=1000)
    found = services.characters_near(game.world, 500, 500, 60)
    with session_local() as s:
        everyone = [
            (c.pos_x, c.pos_z, c.id)
            for c in s.query(Character).filter(Character.world_id == game.world.id)
        ]
    expected = {
        cid
        for x, z, cid in everyone
        if x is not None and z is not None and math.hypot(x - 500, z - 500) <= 60
    }
    assert {c.id for c in found} == expected and expected
    distances = [math.hypot(c.pos_x - 500, c.pos_z - 500) for c in found]  # type: ignore[operator]
    assert distances == sorted(distances)


def test_characters_near_uses_the_position_index(
    game: Game, engine: Engine, session_local: sessionmaker[Session]
) -> None:
    from voxeldb.services._relationships import near_query

    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            bulk_characters(engine, game.user.id, game.world.id, 2000, spread=1000)
            conn.execute(text("ANALYZE"))
            sql = near_query(game.world.id, 500.0, 500.0, 20.0, None).compile(
                engine, compile_kwargs={"literal_binds": True}
            )
            plan = " ".join(
                str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            )
        assert "ix_characters_world_id_pos_x_pos_z" in plan, plan
        return
    bulk_characters(engine, game.user.id, game.world.id, 20_000, spread=5000)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE characters"))
        sql = near_query(game.world.id, 500.0, 500.0, 20.0, None).compile(
            engine, compile_kwargs={"literal_binds": True}
        )
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}").all())
    assert "ix_characters_world_id_pos_x_pos_z" in plan, plan
    assert "Seq Scan on characters" not in plan, plan
