"""Shared setup for the game-service tests: a user, a world, a hero and a sage in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxeldb import services
from voxeldb.meta import Character, User, World

PW = "correct horse battery"


@dataclass
class Game:
    user: User
    world: World
    hero: Character
    sage: Character


def make_game(world_name: str = "realm", settings: dict[str, Any] | None = None) -> Game:
    user = services.create_user("player", "player@example.com", PW)
    world = services.create_world(world_name, settings or {})
    hero = services.create_character(user.id, world.id, "Hero", "warrior")
    sage = services.create_character(user.id, world.id, "Sage", "wizard")
    return Game(user, world, hero, sage)


def gate_graph(sage_id: str) -> dict[str, Any]:
    return {
        "start": "gate",
        "nodes": {
            "gate": {
                "text": "A gate rises from the waves.",
                "options": [
                    {
                        "id": "open",
                        "text": "Force the gate open",
                        "to": "hall",
                        "conditions": {"stats": {"strength": {"min": 12}}},
                    },
                    {
                        "id": "key",
                        "text": "Use the key",
                        "to": "hall",
                        "conditions": {"items": {"key": 1}},
                        "effects": {"items": {"key": -1}},
                    },
                    {
                        "id": "train",
                        "text": "Train on the shore",
                        "to": "gate",
                        "effects": {
                            "stats": {"strength": 1},
                            "items": {"key": 1},
                            "affinity": {sage_id: 15},
                            "experience": 150,
                        },
                    },
                    "flee",
                ],
            },
            "hall": {
                "text": "A hall of echoes.",
                "options": [
                    {
                        "id": "ask",
                        "text": "Ask the sage",
                        "to": "end",
                        "conditions": {"relationships": {sage_id: {"min": 10}}},
                    }
                ],
            },
            "flee": {"text": "The gate sinks again.", "options": []},
            "end": {"text": "The sage answers.", "options": []},
        },
    }


def bulk_characters(
    engine: Any, user_id: Any, world_id: Any, count: int, spread: int, seed: int = 7
) -> None:
    """``count`` characters at random places in a ``spread`` x ``spread`` square: Core
    INSERTs in batches (executemany), positions and pos_x/pos_z written together."""
    import random
    import uuid

    from voxeldb.meta import Character

    table = Character.__table__
    rng = random.Random(seed)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(count):
            x, z = rng.uniform(0, spread), rng.uniform(0, spread)
            batch.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "world_id": world_id,
                    "name": f"npc{i}",
                    "character_class": "villager",
                    "stats": {},
                    "position": {"x": x, "y": 64, "z": z},
                    "pos_x": x,
                    "pos_y": 64.0,
                    "pos_z": z,
                }
            )
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)  # type: ignore[attr-defined]
                batch = []
        if batch:
            conn.execute(table.insert(), batch)  # type: ignore[attr-defined]
