"""The ORM models on both backends: the seed's attributes, passwords, chunks' blocks."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from voxeldb._settings import Settings
from voxeldb.chunks.codec import decode_chunk, encode_chunk
from voxeldb.errors import CoordinateError, ValidationError
from voxeldb.meta import (
    AIAgent,
    AIAgentActivity,
    Character,
    CharacterRelationship,
    InventoryItem,
    SessionLocal,
    Story,
    StoryChoice,
    User,
    World,
    WorldChunk,
    WorldEvolutionLog,
)
from voxeldb.meta._passwords import common_passwords

GOOD = "correct horse battery"


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def _user(s: Session, name: str = "wizard_adventurer") -> User:
    user = User(username=name, email=f"{name}@example.com")
    user.set_password(GOOD)
    s.add(user)
    return user


def test_password_hash_and_check(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        user = _user(s)
        s.commit()
        assert user.id is not None
        assert user.password_hash.startswith("$2b$04$")  # cost from VOXELDB_BCRYPT_ROUNDS
        assert GOOD not in user.password_hash
        assert user.check_password(GOOD)
        assert not user.check_password(GOOD + "x")
        assert not user.check_password("")


def test_default_bcrypt_cost_is_at_least_12() -> None:
    assert Settings.model_fields["bcrypt_rounds"].default >= 12


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short", "too short"),
        ("elevenchars", "too short"),
        ("Password1234", "too common"),
        ("QwertyQwerty", "too common"),
        ("é" * 37, "too long"),  # 74 bytes in UTF-8, 37 characters
        ("x" * 73, "too long"),
    ],
)
def test_password_policy(password: str, words: str) -> None:
    user = User(username="u", email="u@example.com")
    with pytest.raises(ValidationError, match=words) as info:
        user.set_password(password)
    assert info.value.field == "password"


def test_password_at_the_byte_limit_is_not_truncated() -> None:
    user = User(username="u", email="u@example.com")
    password = "ab" * 36  # exactly 72 bytes
    user.set_password(password)
    assert user.check_password(password)
    assert not user.check_password(password[:-1])
    assert not user.check_password(password + "c")  # would match if truncated to 72


def test_common_password_list_is_large_and_lower_case() -> None:
    common = common_passwords()
    assert len(common) >= 2000
    assert {"password", "123456", "qwerty", "letmein"} <= common
    assert all(p == p.lower() for p in common)


def test_user_characters_is_a_query(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        user = _user(s)
        w1, w2 = World(name="w1"), World(name="w2")
        s.add_all([w1, w2])
        s.flush()
        s.add_all(
            [
                Character(user=user, world=w1, name="a", character_class="mage"),
                Character(user=user, world=w1, name="b", character_class="rogue"),
                Character(user=user, world=w2, name="c", character_class="mage"),
            ]
        )
        s.commit()
        world_id = w1.id
    with sessions() as s:
        user = s.query(User).filter_by(username="wizard_adventurer").one()
        names = sorted(c.name for c in user.characters.filter(Character.world_id == world_id).all())
        assert names == ["a", "b"]
        assert user.characters.count() == 3


def test_string_ids_become_uuids(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        user = _user(s)
        world = World(name="w")
        s.add(world)
        s.flush()
        character = Character(
            user_id=str(user.id), world_id=str(world.id), name="n", character_class="c"
        )
        assert isinstance(character.user_id, uuid.UUID)
        s.add(character)
        s.commit()
        # Comparisons with the string form work on both backends.
        found = s.scalar(select(Character).where(Character.world_id == str(world.id)))
        assert found is character
    with pytest.raises(ValidationError, match="user_id"):
        Character(user_id="not-a-uuid")


def test_character_position_is_indexed_by_columns(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        user = _user(s)
        world = World(name="w")
        s.add(world)
        for i, (x, z) in enumerate([(0, 0), (10, 5), (100, 100)]):
            s.add(
                Character(
                    user=user,
                    world=world,
                    name=f"c{i}",
                    character_class="c",
                    position={"x": x, "y": 64, "z": z},
                )
            )
        s.commit()
        near = s.scalars(
            select(Character.name).where(
                Character.world_id == world.id,
                Character.pos_x.between(-20, 20),
                Character.pos_z.between(-20, 20),
            )
        ).all()
        assert sorted(near) == ["c0", "c1"]
        far = s.scalar(select(Character).where(Character.name == "c2"))
        assert far is not None
        far.position = {"x": 1, "y": 64, "z": 1}
        s.commit()
        assert far.pos_x == 1.0 and far.pos_z == 1.0


def test_every_table_round_trips(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        user = _user(s)
        world = World(name="w", world_settings={"height": 64, "min_y": 0, "biome": "forest"})
        s.add(world)
        s.flush()
        a = Character(user=user, world=world, name="a", character_class="mage")
        b = Character(user=user, world=world, name="b", character_class="mage")
        s.add_all([a, b])
        s.flush()
        s.add(InventoryItem(character=a, item_type="material", item_name="wood", quantity=3))
        s.add(CharacterRelationship(character=a, target_character=b, relationship_type="ally"))
        story = Story(world=world, title="t", story_type="quest", narrative_threads={"main": "x"})
        s.add(story)
        s.flush()
        s.add(StoryChoice(story=story, character_id=a.id, choice_text="go", choice_order=1))
        agent = AIAgent(agent_name="builder", memory_state={"seen": []})
        s.add(agent)
        s.flush()
        s.add(
            AIAgentActivity(
                agent_id=agent.id,
                world_id=world.id,
                activity_type="build",
                activity_data={"what": "tower"},
                results={"status": "completed"},
            )
        )
        s.add(
            WorldEvolutionLog(
                world_id=world.id,
                agent_id=agent.id,
                evolution_type="build",
                changes_made={"what": "tower"},
                impact_score=0.5,
            )
        )
        s.commit()
    with sessions() as s:
        a2 = s.scalar(select(Character).where(Character.name == "a"))
        assert a2 is not None
        assert [i.item_name for i in a2.inventory] == ["wood"]
        assert [r.target_character.name for r in a2.relationships] == ["b"]
        assert a2.created_at is not None
        story2 = s.scalar(select(Story))
        assert story2 is not None and story2.choices[0].choice_text == "go"
        assert story2.narrative_threads == {"main": "x"}
        w = s.scalar(select(World))
        assert w is not None and w.world_settings["biome"] == "forest"
        # Deleting a world takes everything in it along (ON DELETE CASCADE).
        s.delete(w)
        s.commit()
        assert s.scalar(select(Character)) is None
        assert s.scalar(select(WorldEvolutionLog)) is None


def _chunk_world(s: Session) -> World:
    world = World(name="blocks", world_settings={"height": 32, "min_y": -16})
    s.add(world)
    s.flush()
    return world


def test_set_and_get_block_at(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        world = _chunk_world(s)
        chunk = WorldChunk(world=world, chunk_x=2, chunk_z=-3)
        s.add(chunk)
        chunk.set_block_at(1, -16, 15, "stone")
        chunk.set_block_at(0, 15, 0, {"type": "oak_log", "axis": "y"})
        s.commit()
        # Never 1: a re-created row must not repeat a version an old cache entry holds.
        first = chunk.version
        assert first > 10**15
        assert chunk.chunk_y == 0
        chunk.set_block_at(1, 0, 1, "dirt")
        s.commit()
        assert chunk.version not in (first, first + 1)
        world_id = world.id
    with sessions() as s:
        chunk2 = s.get(WorldChunk, (world_id, 2, -3))
        assert chunk2 is not None
        assert chunk2.get_block_at(1, -16, 15) == {"type": "stone"}
        assert chunk2.get_block_at(0, 15, 0) == {"type": "oak_log", "axis": "y"}
        assert chunk2.get_block_at(1, 0, 1) == {"type": "dirt"}
        assert chunk2.get_block_at(5, 5, 5) == {"type": "air"}
        blocks = decode_chunk(chunk2.data)
        assert blocks.shape == (32, 16, 16)
        assert int(np.count_nonzero(blocks)) == 3
        assert blocks[0, 15, 1] == 1  # [y - min_y, z, x]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, -17, 0), "-16..15"),
        ((0, 16, 0), "-16..15"),
        ((16, 0, 0), "0..15"),
        ((0, 0, -1), "0..15"),
    ],
)
def test_block_coordinates_out_of_range(
    sessions: sessionmaker[Session], args: tuple[int, int, int], words: str
) -> None:
    with sessions() as s:
        world = _chunk_world(s)
        chunk = WorldChunk(world=world, chunk_x=0, chunk_z=0)
        s.add(chunk)
        with pytest.raises(CoordinateError, match=words):
            chunk.set_block_at(*args, "stone")


def test_concurrent_chunk_write_is_detected(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        world = _chunk_world(s)
        s.add(
            WorldChunk(
                world=world,
                chunk_x=0,
                chunk_z=0,
                data=encode_chunk(np.zeros((32, 16, 16), np.uint16)),
            )
        )
        s.commit()
        world_id = world.id
    with sessions() as s:
        chunk = s.get(WorldChunk, (world_id, 0, 0))
        assert chunk is not None
        first = chunk.version
        chunk.set_block_at(0, 0, 0, "stone")
        s.commit()
        assert chunk.version not in (first, first + 1)
        chunk.world  # noqa: B018 - loaded now, so the edit below needs no query
        # Another writer (the chunk store, say) bumps the version after we read the row.
        with sessions() as other:
            other.execute(
                update(WorldChunk)
                .where(WorldChunk.world_id == world_id)
                .values(version=WorldChunk.version + 1)
                .execution_options(synchronize_session=False)
            )
            other.commit()
        chunk.set_block_at(1, 0, 0, "stone")
        with pytest.raises(StaleDataError):
            s.commit()


def test_session_local_is_lazy() -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from voxeldb.meta import configure

    # Nothing listens on port 1: making a session must not connect, only using it.
    configure("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with SessionLocal() as session:
            bind = session.get_bind()
            assert bind.url.port == 1  # bound to the configured URL, without a connection
            with pytest.raises(OperationalError):
                session.execute(text("SELECT 1"))
    finally:
        configure(None)


def test_detached_chunk_edit_is_kept_in_memory_until_merged(
    session_local: sessionmaker[Session],
) -> None:
    with session_local() as s:
        world = _chunk_world(s)
        s.add(
            WorldChunk(
                world=world,
                chunk_x=0,
                chunk_z=0,
                data=encode_chunk(np.zeros((32, 16, 16), np.uint16)),
            )
        )
        s.commit()
        world_id = world.id
    with session_local() as s:
        chunk = s.get(WorldChunk, (world_id, 0, 0))
    assert chunk is not None
    first = chunk.version
    # Detached: the world and the registry come from SessionLocal's engine.
    chunk.set_block_at(3, 4, 5, "glass")
    assert chunk.get_block_at(3, 4, 5) == {"type": "glass"}
    with session_local() as s:
        assert s.get(WorldChunk, (world_id, 0, 0)).get_block_at(3, 4, 5) == {"type": "air"}  # type: ignore[union-attr]
        s.merge(chunk)
        s.commit()
    with session_local() as s:
        stored = s.get(WorldChunk, (world_id, 0, 0))
        assert stored is not None
        assert stored.get_block_at(3, 4, 5) == {"type": "glass"}
        assert stored.version != first


def test_chunk_of_the_wrong_height_is_reported(sessions: sessionmaker[Session]) -> None:
    from voxeldb.errors import ChunkFormatError

    with sessions() as s:
        world = _chunk_world(s)  # 32 high
        chunk = WorldChunk(
            world=world, chunk_x=0, chunk_z=0, data=encode_chunk(np.zeros((16, 16, 16), np.uint16))
        )
        s.add(chunk)
        with pytest.raises(ChunkFormatError, match="expected \\(32, 16, 16\\)"):
            chunk.get_block_at(0, 0, 0)
