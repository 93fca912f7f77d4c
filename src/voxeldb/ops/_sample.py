"""Generated terrain for a world, and the sample data of ``voxeldb setup --sample-data``.

Terrain from :mod:`voxeldb.terrain` holds indices into ``TERRAIN_STATES``; a world interns
those states (in order) and a numpy lookup table turns the generator's ids into the world's,
so the same code fills a new world (identity mapping) and one that had other states first.
Chunks go through ``ChunkStore.put_many`` from a lazy generator, one transaction per batch of
``GENERATE_BATCH`` chunks: memory stays bounded whatever the radius, an interruption keeps every
batch committed before it, and a second run skips the chunks already stored (it resumes).
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from voxeldb import services
from voxeldb.chunks import DEFAULT_HEIGHT, DEFAULT_MIN_Y, intern_states
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import AIAgent, CharacterRelationship, Story, User, WorldChunk
from voxeldb.services import WorldRef, resolve_world
from voxeldb.terrain import TERRAIN_STATES, generate_chunk

if TYPE_CHECKING:
    from voxeldb import Database

__all__ = [
    "GENERATE_BATCH",
    "SAMPLE_WORLD_NAME",
    "SampleReport",
    "create_sample_data",
    "ensure_world",
    "generate_terrain",
    "terrain_lut",
]

SAMPLE_WORLD_NAME = "Eldoria"
MAX_RADIUS = 4096
GENERATE_BATCH = 64
"""Chunks per transaction of :func:`generate_terrain` (what an interruption can lose)."""
_KEYS_PER_QUERY = 16384
"""How many chunk positions one "which are stored already" query covers."""


def ensure_world(
    db: Database,
    ref: str,
    *,
    seed: int | None = None,
    height: int | None = None,
    min_y: int | None = None,
) -> tuple[WorldRef, bool]:
    """The world ``ref`` (name or id), created under that name when no world matches."""
    try:
        world = resolve_world(db, ref)
    except NotFoundError:
        pass
    else:
        if height is not None and height != world.height:
            raise ValidationError(
                f"world {world.name!r} has height {world.height}, not {height}", field="height"
            )
        if min_y is not None and min_y != world.min_y:
            raise ValidationError(
                f"world {world.name!r} has min_y {world.min_y}, not {min_y}", field="min_y"
            )
        return world, False
    settings: dict[str, Any] = {
        "height": DEFAULT_HEIGHT if height is None else height,
        "min_y": DEFAULT_MIN_Y if min_y is None else min_y,
        "seed": 0 if seed is None else seed,
        "generator": "voxeldb.terrain",
    }
    world_id = db.create_world(ref, settings)
    return resolve_world(db, world_id), True


def terrain_lut(db: Database, world_id: uuid.UUID) -> npt.NDArray[np.uint32]:
    """``lut[terrain_id] == world state id``: ``TERRAIN_STATES`` interned in ``world_id``."""
    with db.engine.connect() as conn:
        if db.backend == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            ids = intern_states(conn, world_id, list(TERRAIN_STATES[1:]))
    return np.array([0, *ids], dtype=np.uint32)


def _square(center: tuple[int, int], radius: int) -> tuple[int, int, int, int]:
    cx, cz = center
    return cx - radius, cz - radius, cx + radius, cz + radius


def _stored_keys(
    db: Database, world_id: uuid.UUID, rect: tuple[int, int, int, int]
) -> set[tuple[int, int]]:
    """Positions of the chunks of ``world_id`` stored in ``rect``: keys only, no chunk bytes.

    ``ChunkStore`` has no keys-only read (``region`` decodes every chunk), so this asks the
    ``world_chunks`` table directly, as :func:`voxeldb.ops.stored_bounds` does.
    """
    cx0, cz0, cx1, cz1 = rect
    t = WorldChunk.__table__.c
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(t.chunk_x, t.chunk_z).where(
                t.world_id == world_id,
                t.chunk_x.between(cx0, cx1),
                t.chunk_z.between(cz0, cz1),
            )
        )
        return {(int(x), int(z)) for x, z in rows}


def generate_terrain(
    db: Database,
    world: WorldRef,
    *,
    radius: int | None = None,
    rect: tuple[int, int, int, int] | None = None,
    center: tuple[int, int] = (0, 0),
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    batch_size: int = GENERATE_BATCH,
) -> tuple[int, float]:
    """Write generated terrain for the square of ``radius`` around ``center`` (or ``rect``).

    Chunks are committed ``batch_size`` at a time (one ``put_many`` each), so an interruption
    (Ctrl-C) keeps every batch committed before it. Chunks already stored are skipped unless
    ``replace``: running the same call again finishes an interrupted one.

    Returns ``(chunks written, seconds)``. ``progress(n)`` is called as chunks are committed
    and as stored ones are skipped: its running total is how many chunks of the square are
    stored, whenever the call stops.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be >= 1, got {batch_size!r}", field="batch_size")
    if rect is None:
        if radius is None:
            raise ValidationError("give a radius or a rectangle", field="radius")
        if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
            raise ValidationError(
                f"radius must be an integer from 0 to {MAX_RADIUS}, got {radius!r}", field="radius"
            )
        rect = _square(center, radius)
    if seed is None:
        seed = int(world.settings.get("seed", 0))
    lut = terrain_lut(db, world.id)
    dtype = np.uint16 if int(lut.max()) <= np.iinfo(np.uint16).max else np.uint32
    lut = lut.astype(dtype)
    identity = bool(np.array_equal(lut, np.arange(len(lut))))
    cx0, cz0, cx1, cz1 = rect
    height, min_y = world.height, world.min_y

    rows_per_query = max(1, _KEYS_PER_QUERY // (cx1 - cx0 + 1))

    def items() -> Iterator[tuple[int, int, npt.NDArray[Any]]]:
        # Plain row order keeps each batch a compact rectangle for the database's index.
        for band_z0 in range(cz0, cz1 + 1, rows_per_query):
            band_z1 = min(cz1, band_z0 + rows_per_query - 1)
            stored = set() if replace else _stored_keys(db, world.id, (cx0, band_z0, cx1, band_z1))
            if stored and progress is not None:
                progress(len(stored))
            for cz in range(band_z0, band_z1 + 1):
                for cx in range(cx0, cx1 + 1):
                    if (cx, cz) in stored:
                        continue
                    blocks = generate_chunk(cx, cz, seed=seed, height=height, min_y=min_y)
                    yield cx, cz, blocks if identity else lut[blocks]

    started = time.perf_counter()
    store = db.chunks(world.id)
    pending = items()
    written = 0
    while True:
        # Each batch is consumed lazily by put_many: memory stays one encoding batch.
        batch = itertools.islice(pending, batch_size)
        first = next(batch, None)
        if first is None:
            break
        count = store.put_many(itertools.chain((first,), batch))
        written += count
        if progress is not None:
            progress(count)
    return written, time.perf_counter() - started


# --- the sample data ----------------------------------------------------------------------


@dataclass
class SampleReport:
    """What ``sample_data()`` did. ``passwords`` are the sample users' (random) passwords."""

    world_id: uuid.UUID
    world_name: str
    skipped: bool
    chunks: int = 0
    users: list[str] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


_USERS = [
    ("wizard_adventurer", "wizard@example.com"),
    ("knight_errant", "knight@example.com"),
    ("shadow_rogue", "rogue@example.com"),
]
_CHARACTERS = [
    # (user index, name, class, inventory, position)
    (0, "Merlin the Wise", "wizard", [("oak_staff", 1), ("mana_potion", 5), ("spellbook", 1)],
     {"x": 8, "y": 72, "z": 8}),
    (1, "Sir Galahad", "knight", [("iron_sword", 1), ("shield", 1), ("bread", 12)],
     {"x": -40, "y": 68, "z": 22}),
    (2, "Vex", "rogue", [("dagger", 2), ("lockpick", 7), ("smoke_bomb", 3)],
     {"x": 60, "y": 65, "z": -35}),
    (0, "Lyra Starweaver", "druid", [("seed_pouch", 1), ("healing_herb", 9)],
     {"x": 25, "y": 70, "z": 50}),
]  # fmt: skip
_RELATIONSHIPS = [
    # (from, to, type, affinity)
    (0, 1, "ally", 0.8),
    (1, 0, "ally", 0.7),
    (2, 1, "rival", -0.4),
    (0, 3, "mentor", 0.9),
    (3, 2, "suspicious", -0.1),
]
_AGENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("world_weaver", "terrain", {"temperature": 0.3, "budget_blocks": 5000}),
    ("story_teller", "narrative", {"temperature": 0.8, "max_threads": 4}),
    ("village_keeper", "npc", {"population": 40}),
]
_ACTIVITIES: list[tuple[str, str, dict[str, Any]]] = [
    ("world_weaver", "grow_forest", {"center": [30, 20], "trees": 14}),
    ("world_weaver", "carve_river", {"from": [-60, -10], "to": [40, 70], "length": 130}),
    ("story_teller", "spawn_quest", {"quest": "The Sunken Gate", "hooks": 2}),
    ("village_keeper", "build_village", {"center": [-40, 22], "houses": 6}),
    ("story_teller", "weather_event", {"kind": "storm", "duration_ticks": 2400}),
]


def _random_password() -> str:
    return "sample-" + secrets.token_urlsafe(12)


def create_sample_data(db: Database, *, size: int = 16, seed: int = 42) -> SampleReport:
    """The sample world: users, a ``size`` x ``size`` chunk world, characters with inventories
    and relationships, a branching story with choices, AI agents with activities and
    evolution-log entries. Skipped (``skipped=True``) when the sample world exists already."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 256:
        raise ValidationError(f"size must be from 1 to 256 chunks, got {size!r}", field="size")
    started = time.perf_counter()
    try:
        existing = resolve_world(db, SAMPLE_WORLD_NAME)
    except NotFoundError:
        pass
    else:
        report = SampleReport(existing.id, existing.name, skipped=True)
        half = size // 2
        rect = (-half, -half, size - half - 1, size - half - 1)
        with db.engine.connect() as conn:
            has_chunks = conn.execute(
                select(WorldChunk.chunk_x).where(WorldChunk.world_id == existing.id).limit(1)
            ).first()
        if has_chunks is None:
            # A run interrupted between the rows and the terrain: finish the terrain.
            report.chunks, _ = generate_terrain(
                db, existing, rect=rect, seed=seed, batch_size=size * size
            )
        return report

    report_users: list[str] = []
    passwords: dict[str, str] = {}
    with db.session() as s:
        user_ids: list[uuid.UUID] = []
        for username, email in _USERS:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                password = _random_password()
                user = services.create_user(username, email, password, session=s)
                passwords[username] = password
            user_ids.append(user.id)
            report_users.append(username)
        world = services.create_world(
            SAMPLE_WORLD_NAME,
            {"height": DEFAULT_HEIGHT, "min_y": DEFAULT_MIN_Y, "seed": seed, "generator": "voxeldb.terrain",
             "difficulty": "normal", "spawn": {"x": 8, "y": 72, "z": 8}},
            session=s,
        )  # fmt: skip
        world.description = "The sample world: rolling hills, a sea, caves and ores."
        world.created_by = user_ids[0]
        s.flush()
        world_id = world.id

        char_ids: list[uuid.UUID] = []
        for user_index, name, char_class, inventory, position in _CHARACTERS:
            character = services.create_character(
                user_ids[user_index], world_id, name, char_class, session=s
            )
            character.position = position
            char_ids.append(character.id)
            for item_name, quantity in inventory:
                services.add_item(character.id, item_name, quantity, session=s)
        for a, b, kind, affinity in _RELATIONSHIPS:
            s.add(
                CharacterRelationship(
                    character_id=char_ids[a],
                    target_character_id=char_ids[b],
                    relationship_type=kind,
                    affinity=affinity,
                    relationship_data={"since": "the founding of Eldoria"},
                )
            )

        story = services.create_story(world_id, "The Sunken Gate", "main_quest", session=s)
        story.description = "An ancient gate rises from the sea; who will open it?"
        story.branching_data = {
            "start": {"text": "A gate rises from the waves.", "options": ["open", "seal", "flee"]},
            "open": {"text": "Light pours out.", "options": ["enter", "wait"]},
            "seal": {"text": "The sea grows calm.", "options": []},
            "flee": {"text": "The gate sinks again.", "options": []},
            "enter": {"text": "A hall of echoes.", "options": []},
            "wait": {"text": "Something steps through.", "options": []},
        }
        story.narrative_threads = {
            "main": "The adventure begins...",
            "gate": "Who built the Sunken Gate?",
            "rivalry": "Vex wants the gate's treasure for herself.",
        }
        side = services.create_story(world_id, "Roots of the Old Oak", "side_quest", session=s)
        side.branching_data = {"start": {"text": "The oak whispers.", "options": ["listen"]}}
        s.flush()
        for char_index, text_choice in ((0, "open"), (1, "enter"), (2, "wait")):
            services.make_choice(story.id, char_ids[char_index], text_choice, session=s)
        services.make_choice(side.id, char_ids[3], "listen", session=s)

        for agent_name, agent_type, config in _AGENTS:
            if (
                s.execute(select(AIAgent.id).where(AIAgent.agent_name == agent_name)).first()
                is None
            ):
                services.create_agent(agent_name, agent_type, config, session=s)
        s.flush()
        for agent_name, activity_type, data in _ACTIVITIES:
            services.run_agent_activity(agent_name, world_id, activity_type, data, session=s)
        counts = {
            "users": len(_USERS),
            "characters": len(_CHARACTERS),
            "inventory_items": sum(len(c[3]) for c in _CHARACTERS),
            "relationships": len(_RELATIONSHIPS),
            "stories": s.query(Story).filter(Story.world_id == world_id).count(),
            "agents": len(_AGENTS),
            "activities": len(_ACTIVITIES),
        }

    world_ref = resolve_world(db, world_id)
    half = size // 2
    # One transaction (batch_size covers the square): the terrain is all there or not at all,
    # which is what "exists already, skipped" above relies on.
    chunks, _ = generate_terrain(
        db,
        world_ref,
        rect=(-half, -half, size - half - 1, size - half - 1),
        seed=seed,
        batch_size=size * size,
    )
    counts["chunks"] = chunks
    return SampleReport(
        world_id=world_id,
        world_name=SAMPLE_WORLD_NAME,
        skipped=False,
        chunks=chunks,
        users=report_users,
        passwords=passwords,
        counts=counts,
        seconds=time.perf_counter() - started,
    )
