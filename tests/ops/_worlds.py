"""A small world touching every world-owned table, built with the ORM (no chunk store needed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from voxeldb.chunks._registry import intern_states
from voxeldb.chunks.codec import encode_chunk
from voxeldb.meta import (
    AIAgent,
    AIAgentActivity,
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    StoryChoice,
    User,
    World,
    WorldChunk,
    WorldEvolutionLog,
)
from voxeldb.terrain import TERRAIN_STATES, generate_chunk

HEIGHT = 64
MIN_Y = 0


@dataclass
class BuiltWorld:
    world_id: uuid.UUID
    other_world_id: uuid.UUID
    user_ids: list[uuid.UUID]
    chunk_bytes: dict[tuple[int, int], bytes]


def build_world(engine: Engine, name: str = "snapworld", size: int = 3) -> BuiltWorld:
    """A ``size`` x ``size`` chunk world plus one other world that must not leak into snapshots."""
    with Session(engine, expire_on_commit=False) as s:
        alice = User(username="alice", email="alice@example.com", password_hash="x" * 60)
        bob = User(username="bob", email="bob@example.com", password_hash="y" * 60)
        s.add_all([alice, bob])
        s.flush()
        world = World(
            name=name,
            description="a snapshot test world",
            world_settings={"height": HEIGHT, "min_y": MIN_Y, "seed": 7},
            created_by=alice.id,
        )
        other = World(name=f"{name}-other", world_settings={"height": HEIGHT, "min_y": MIN_Y})
        s.add_all([world, other])
        s.flush()
        hero = Character(
            user_id=alice.id,
            world_id=world.id,
            name="Hero",
            character_class="mage",
            stats={"int": 12},
            position={"x": 1, "y": 40, "z": -3},
        )
        rogue = Character(
            user_id=bob.id,
            world_id=world.id,
            name="Rogue",
            character_class="rogue",
            position={"x": 5, "y": 41, "z": 2},
        )
        stranger = Character(
            user_id=bob.id, world_id=other.id, name="Stranger", character_class="bard"
        )
        s.add_all([hero, rogue, stranger])
        s.flush()
        s.add_all(
            [
                InventoryItem(
                    character_id=hero.id,
                    item_name="staff",
                    quantity=1,
                    slot=0,
                    item_data={"enchant": "fire"},
                ),
                InventoryItem(character_id=rogue.id, item_name="dagger", quantity=2),
                InventoryItem(character_id=stranger.id, item_name="lute", quantity=1),
                CharacterRelationship(
                    character_id=hero.id,
                    target_character_id=rogue.id,
                    relationship_type="friend",
                    affinity=0.8,
                ),
                # Crosses worlds: cannot travel with either world's snapshot.
                CharacterRelationship(
                    character_id=rogue.id,
                    target_character_id=stranger.id,
                    relationship_type="rival",
                    affinity=-0.2,
                ),
            ]
        )
        story = Story(
            world_id=world.id,
            title="The Gate",
            story_type="quest",
            branching_data={"start": ["open", "leave"]},
            narrative_threads={"main": "The adventure begins..."},
        )
        s.add(story)
        s.flush()
        s.add_all(
            [
                StoryChoice(
                    story_id=story.id, character_id=hero.id, choice_text="open", choice_order=1
                ),
                StoryChoice(
                    story_id=story.id, character_id=stranger.id, choice_text="leave", choice_order=2
                ),
            ]
        )
        agent = AIAgent(agent_name="weaver", agent_type="narrative", configuration={"k": 1})
        s.add(agent)
        s.flush()
        s.add_all(
            [
                AIAgentActivity(
                    agent_id=agent.id,
                    world_id=world.id,
                    activity_type="grow_forest",
                    activity_data={"trees": 3},
                    results={"status": "completed"},
                ),
                AIAgentActivity(agent_id=agent.id, world_id=other.id, activity_type="flood"),
                WorldEvolutionLog(
                    world_id=world.id,
                    agent_id=agent.id,
                    evolution_type="grow_forest",
                    changes_made={"trees": 3},
                    impact_score=0.5,
                ),
            ]
        )
        s.commit()
        world_id, other_id, user_ids = world.id, other.id, [alice.id, bob.id]

    chunk_bytes: dict[tuple[int, int], bytes] = {}
    with engine.begin() as conn:
        ids = intern_states(conn, world_id, list(TERRAIN_STATES[1:]))
        lut = np.array([0, *ids], dtype=np.uint16)
        rows = []
        for cx in range(-1, size - 1):
            for cz in range(-1, size - 1):
                blocks = lut[generate_chunk(cx, cz, seed=7, height=HEIGHT, min_y=MIN_Y)]
                data = encode_chunk(blocks)
                chunk_bytes[(cx, cz)] = data
                rows.append(
                    {
                        "world_id": world_id,
                        "chunk_x": cx,
                        "chunk_z": cz,
                        "data": data,
                        "version": 3,
                        "chunk_metadata": {"biome": "plains"} if cx == 0 else None,
                    }
                )
        conn.execute(WorldChunk.__table__.insert(), rows)
        conn.execute(
            WorldChunk.__table__.insert(),
            [{"world_id": other_id, "chunk_x": 0, "chunk_z": 0, "data": b"other", "version": 1}],
        )
    return BuiltWorld(world_id, other_id, user_ids, chunk_bytes)


def chunk_bytes(engine: Engine, world_id: uuid.UUID) -> dict[tuple[int, int], tuple[bytes, int]]:
    t = WorldChunk.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.chunk_x, t.c.chunk_z, t.c.data, t.c.version).where(t.c.world_id == world_id)
        ).all()
    return {(r[0], r[1]): (bytes(r[2]), int(r[3])) for r in rows}
