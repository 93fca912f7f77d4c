"""The ORM behaves as users expect (issue 13.5): JSONB expressions, tracked JSON dicts,
model-level validation, and two SQLite sessions writing one after the other."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from voxeldb.errors import ValidationError
from voxeldb.meta import (
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    User,
    World,
    WorldChunk,
)

GOOD = "correct horse battery"


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def _world_and_user(s: Session) -> tuple[World, User]:
    user = User(username="maker", email="maker@example.com")
    user.set_password(GOOD)
    world = World(name="w", world_settings={"height": 32, "min_y": 0})
    s.add_all([user, world])
    s.flush()
    return world, user


# --- JSON columns ---------------------------------------------------------------------------


def test_json_expressions(sessions: sessionmaker[Session], engine: Engine) -> None:
    with sessions() as s:
        world, _ = _world_and_user(s)
        s.add_all(
            [
                Story(
                    world=world,
                    title="a",
                    story_type="q",
                    branching_data={"start": "gate", "tag": "sea"},
                ),
                Story(world=world, title="b", story_type="q", branching_data={"start": "oak"}),
            ]
        )
        s.commit()
        by_text = s.scalars(
            select(Story.title).where(Story.branching_data["start"].astext == "oak")
        ).all()
        assert by_text == ["b"]
        by_item = s.scalars(
            select(Story.title).where(Story.branching_data["tag"].as_string() == "sea")
        ).all()
        assert by_item == ["a"]
        if engine.dialect.name == "postgresql":
            # Was "DataError: invalid input syntax for type json" (generic JSON's LIKE).
            found = s.scalars(
                select(Story.title).where(Story.branching_data.contains({"tag": "sea"}))
            ).all()
            assert found == ["a"]


def test_contains_uses_the_gin_index(sessions: sessionmaker[Session], engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("GIN indexes are PostgreSQL's")
    query = select(Story.id).where(Story.branching_data.contains({"tag": "sea"}))
    assert "stories.branching_data @> " in str(query.compile(engine))
    with sessions() as s:
        s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in s.execute(
                text("EXPLAIN SELECT id FROM stories WHERE branching_data @> CAST(:v AS jsonb)"),
                {"v": '{"tag": "sea"}'},
            ).all()
        )
    assert "ix_stories_branching_data" in plan, plan


def test_in_place_json_changes_are_saved(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        world, user = _world_and_user(s)
        hero = Character(
            user=user,
            world=world,
            name="h",
            character_class="c",
            position={"x": 0, "y": 64, "z": 0},
        )
        s.add(hero)
        s.commit()
        hero.position["x"] = 500
        hero.stats["strength"] = 12
        s.commit()
        hero_id = hero.id
    with sessions() as s:
        again = s.get(Character, hero_id)
        assert again is not None
        assert again.position == {"x": 500, "y": 64, "z": 0}
        assert again.pos_x == 500.0 and again.pos_z == 0.0
        assert again.stats == {"strength": 12}


# --- model-level validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: User(username="ok_name", email="junk"), "email"),
        (
            lambda: User(username="ok_name", email="a@example.com", password_hash="x"),
            "password_hash",
        ),
        (lambda: User(username="bad name!", email="a@example.com"), "username"),
        (lambda: Character(name="n", character_class="c", stats=[1, 2]), "stats"),
        (lambda: Character(name="n", character_class="c", stats={"str": "high"}), "stats"),
        (lambda: Character(name="n", character_class="c", position={"x": "far"}), "position"),
        (lambda: Character(name="", character_class="c"), "name"),
        (lambda: Character(name="n", character_class="c", level=0), "level"),
        (lambda: InventoryItem(item_name="i", quantity=-1), "quantity"),
        (lambda: CharacterRelationship(affinity=float("nan")), "affinity"),
        (lambda: Story(title="t", story_type="q", branching_data=[1]), "branching_data"),
    ],
)
def test_models_refuse_what_the_services_refuse(make: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field


def test_models_accept_good_values() -> None:
    user = User(username="ok_name", email="a@example.com", password_hash="!locked")
    assert user.password_hash == "!locked"
    hero = Character(name="n", character_class="c", stats={"s": 1.5}, position={"x": 1, "w": "?"})
    assert hero.stats == {"s": 1.5}


# --- two sessions on SQLite ---------------------------------------------------------------


def _two_chunks(sessions: sessionmaker[Session]) -> World:
    with sessions() as s:
        world, _ = _world_and_user(s)
        for cx in (0, 1):
            chunk = WorldChunk(world=world, chunk_x=cx, chunk_z=0)
            s.add(chunk)
            chunk.set_block_at(0, 0, 0, "stone")
        s.commit()
        return world


def test_second_session_writes_after_the_first_commits(sessions: sessionmaker[Session]) -> None:
    # Both read, the first writes and commits, then the second writes another chunk. SQLite
    # used to refuse the second at once ("database is locked": its snapshot was older than
    # the first's commit); now it writes, as on PostgreSQL.
    world = _two_chunks(sessions)
    with sessions() as a, sessions() as b:
        chunk_a = a.get(WorldChunk, (world.id, 0, 0))
        chunk_b = b.get(WorldChunk, (world.id, 1, 0))
        assert chunk_a is not None and chunk_b is not None
        chunk_a.set_block_at(1, 0, 0, "dirt")
        a.commit()
        chunk_b.set_block_at(1, 0, 0, "sand")
        b.commit()
    with sessions() as s:
        blocks = [s.get(WorldChunk, (world.id, cx, 0)).get_block_at(1, 0, 0) for cx in (0, 1)]  # type: ignore[union-attr]
    assert blocks == [{"type": "dirt"}, {"type": "sand"}]


def test_same_chunk_is_a_stale_data_error_on_both_backends(
    sessions: sessionmaker[Session],
) -> None:
    world = _two_chunks(sessions)
    with sessions() as a, sessions() as b:
        chunk_a = a.get(WorldChunk, (world.id, 0, 0))
        chunk_b = b.get(WorldChunk, (world.id, 0, 0))
        assert chunk_a is not None and chunk_b is not None
        chunk_a.set_block_at(1, 0, 0, "dirt")
        a.commit()
        chunk_b.set_block_at(2, 0, 0, "sand")
        with pytest.raises(StaleDataError):  # not "database is locked": the edit is detected
            b.commit()


def test_second_writer_waits_for_the_first(sessions: sessionmaker[Session]) -> None:
    world = _two_chunks(sessions)
    errors: list[BaseException] = []
    with sessions() as a:
        chunk_a = a.get(WorldChunk, (world.id, 0, 0))
        assert chunk_a is not None
        chunk_a.set_block_at(1, 0, 0, "dirt")
        a.flush()  # holds the write lock (PostgreSQL: the row lock) until it commits

        def other() -> None:
            try:
                with sessions() as b:
                    chunk_b = b.get(WorldChunk, (world.id, 1, 0))
                    assert chunk_b is not None
                    chunk_b.set_block_at(1, 0, 0, "sand")
                    b.commit()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        a.commit()
        thread.join(30)
    assert not thread.is_alive() and errors == []
    with sessions() as s:
        chunk = s.get(WorldChunk, (world.id, 1, 0))
        assert chunk is not None and chunk.get_block_at(1, 0, 0) == {"type": "sand"}
