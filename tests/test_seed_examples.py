"""The seed's examples, run as written against voxeldb (only the imports changed).

Sections "Relationship Examples" and "Usage Examples" of seed-database-design.md, copied
verbatim below (``from database_models import X`` became ``from voxeldb.meta import X``);
the free variables of the relationship snippet are the parameters of the function around it.
"""
# ruff: noqa: E402, I001, W293

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import or_

from voxeldb import services
from voxeldb._engine import make_engine
from voxeldb.meta import upgrade
from voxeldb.meta import configure

# --- "Usage Examples" of the seed, verbatim apart from the imports ----------------------
# fmt: off

# ### 1. User Management
from voxeldb.meta import User, SessionLocal

# Create new user
def create_user(username: str, email: str, password: str):
    with SessionLocal() as session:
        user = User(username=username, email=email)
        user.set_password(password)
        session.add(user)
        session.commit()
        return user

# Authenticate user
def authenticate_user(username: str, password: str):
    with SessionLocal() as session:
        user = session.query(User).filter_by(username=username).first()
        if user and user.check_password(password):
            return user
        return None

# ### 2. World Management
from voxeldb.meta import World, WorldChunk

# Create new world
def create_world(name: str, settings: dict):
    with SessionLocal() as session:
        world = World(name=name, world_settings=settings)
        session.add(world)
        session.commit()
        return world

# Load chunk data
def get_chunk(world_id: str, x: int, y: int, z: int):
    with SessionLocal() as session:
        return session.query(WorldChunk).filter(
            WorldChunk.world_id == world_id,
            WorldChunk.chunk_x == x,
            WorldChunk.chunk_y == y,
            WorldChunk.chunk_z == z
        ).first()

# Set block in chunk
def set_block(world_id: str, x: int, y: int, z: int, block_data: dict):
    chunk_x, chunk_z = x // 16, z // 16
    local_x, local_z = x % 16, z % 16
    
    with SessionLocal() as session:
        chunk = get_chunk(world_id, chunk_x, 0, chunk_z)
        if chunk:
            chunk.set_block_at(local_x, y, local_z, block_data)
            session.commit()

# ### 3. Character Operations
from voxeldb.meta import Character, InventoryItem

# Create character
def create_character(user_id: str, world_id: str, name: str, char_class: str):
    with SessionLocal() as session:
        character = Character(
            user_id=user_id,
            world_id=world_id,
            name=name,
            character_class=char_class,
            stats={'strength': 10, 'intelligence': 10, 'dexterity': 10},
            position={'x': 0, 'y': 64, 'z': 0}
        )
        session.add(character)
        session.commit()
        return character

# Add item to inventory
def add_item(character_id: str, item_name: str, quantity: int = 1):
    with SessionLocal() as session:
        item = InventoryItem(
            character_id=character_id,
            item_type='material',
            item_name=item_name,
            quantity=quantity
        )
        session.add(item)
        session.commit()

# ### 4. Story System
from voxeldb.meta import Story, StoryChoice

# Create story arc
def create_story(world_id: str, title: str, story_type: str):
    with SessionLocal() as session:
        story = Story(
            world_id=world_id,
            title=title,
            story_type=story_type,
            narrative_threads={'main': 'The adventure begins...'}
        )
        session.add(story)
        session.commit()
        return story

# Record player choice
def make_choice(story_id: str, character_id: str, choice_text: str):
    with SessionLocal() as session:
        choice = StoryChoice(
            story_id=story_id,
            character_id=character_id,
            choice_text=choice_text,
            choice_order=1
        )
        session.add(choice)
        session.commit()

# ### 5. AI Agent Integration
from voxeldb.meta import AIAgent, AIAgentActivity, WorldEvolutionLog

# Execute AI agent activity
def run_agent_activity(agent_name: str, world_id: str, activity_type: str, data: dict):
    with SessionLocal() as session:
        agent = session.query(AIAgent).filter_by(agent_name=agent_name).first()
        
        # Record activity
        activity = AIAgentActivity(
            agent_id=agent.id,
            world_id=world_id,
            activity_type=activity_type,
            activity_data=data,
            results={'status': 'completed'}
        )
        session.add(activity)
        
        # Log world evolution
        evolution = WorldEvolutionLog(
            world_id=world_id,
            agent_id=agent.id,
            evolution_type=activity_type,
            changes_made=data,
            impact_score=0.5
        )
        session.add(evolution)
        session.commit()

# --- "Relationship Examples" of the seed -------------------------------------------------
from voxeldb.meta import CharacterRelationship


def relationship_examples(session, world_id, x, z, character):
    # Get user's characters in a world
    user = session.query(User).filter_by(username='wizard_adventurer').first()
    characters = user.characters.filter(Character.world_id == world_id).all()

    # Load world chunks around position
    chunks = session.query(WorldChunk).filter(
        WorldChunk.world_id == world_id,
        WorldChunk.chunk_x.between(x-2, x+2),
        WorldChunk.chunk_z.between(z-2, z+2)
    ).all()

    # Get character relationships
    relationships = session.query(CharacterRelationship).filter(
        or_(
            CharacterRelationship.character_id == character.id,
            CharacterRelationship.target_character_id == character.id
        )
    ).all()
    return characters, chunks, relationships
# fmt: on


# --- the tests ---------------------------------------------------------------------------

PASSWORD = "staff of the seven stars"


@pytest.fixture(autouse=True)
def seed_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DATABASE_URL points at a fresh, migrated database; SessionLocal follows it."""
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("DATABASE_URL", database_url)
    configure(None)  # SessionLocal reads DATABASE_URL again
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    yield
    configure(None)


def test_usage_examples() -> None:
    user = create_user("wizard_adventurer", "wizard@example.com", PASSWORD)
    assert user.id is not None
    assert authenticate_user("wizard_adventurer", PASSWORD).id == user.id
    assert authenticate_user("wizard_adventurer", "not the password") is None

    world = create_world("Eldoria", {"height": 128, "min_y": 0, "difficulty": "normal"})
    world_id = str(world.id)
    assert get_chunk(world_id, 0, 0, 0) is None
    # A stored chunk for set_block to find (the seed's set_block only edits existing chunks).
    services.set_block(world_id, 5, 64, 7, "stone")
    chunk = get_chunk(world_id, 0, 0, 0)
    assert chunk is not None and chunk.chunk_y == 0
    assert chunk.get_block_at(5, 64, 7) == {"type": "stone"}
    # As written in the seed, the chunk comes from get_chunk's own (closed) session, so the
    # edit lands on that detached object only (nothing is stored): it must simply run.
    set_block(world_id, 6, 64, 7, {"type": "oak_log", "axis": "y"})

    character = create_character(str(user.id), world_id, "Merlin", "wizard")
    assert character.user_id == user.id
    add_item(str(character.id), "mana_crystal", 3)
    add_item(str(character.id), "wand")

    story = create_story(world_id, "The Crystal Caves", "quest")
    make_choice(str(story.id), str(character.id), "Enter the caves")

    services.create_agent("world_shaper", "terrain")
    run_agent_activity("world_shaper", world_id, "terrain_generation", {"raised": 12})

    with SessionLocal() as session:
        merlin = session.get(Character, character.id)
        assert sorted((i.item_name, i.quantity) for i in merlin.inventory) == [
            ("mana_crystal", 3),
            ("wand", 1),
        ]
        assert [c.choice_text for c in session.get(Story, story.id).choices] == ["Enter the caves"]
        assert session.query(AIAgentActivity).one().results == {"status": "completed"}
        assert session.query(WorldEvolutionLog).one().changes_made == {"raised": 12}


def test_relationship_examples() -> None:
    user = create_user("wizard_adventurer", "wizard@example.com", PASSWORD)
    world = create_world("Eldoria", {})
    other_world = create_world("Shadowmere", {})
    merlin = create_character(str(user.id), str(world.id), "Merlin", "wizard")
    morgana = create_character(str(user.id), str(world.id), "Morgana", "witch")
    create_character(str(user.id), str(other_world.id), "Elsewhere", "bard")
    for cx, cz in [(0, 0), (2, -2), (3, 0)]:
        services.set_block(world.id, cx * 16, 0, cz * 16, "grass_block")
    with SessionLocal() as session:
        session.add(
            CharacterRelationship(
                character_id=morgana.id, target_character_id=merlin.id, relationship_type="rival"
            )
        )
        session.commit()
    with SessionLocal() as session:
        characters, chunks, relationships = relationship_examples(
            session, str(world.id), 0, 0, merlin
        )
        assert sorted(c.name for c in characters) == ["Merlin", "Morgana"]
        assert sorted((c.chunk_x, c.chunk_z) for c in chunks) == [(0, 0), (2, -2)]
        assert [r.relationship_type for r in relationships] == ["rival"]
