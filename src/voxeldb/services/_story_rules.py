"""What a story step checks and does, shared by both ways ``choose`` runs (``_story_play``).

The checks (the character's place, the option, its conditions) and the effects (stats,
items, affinity, experience) are here once, so that the PostgreSQL hot path
(``_story_pipelined``) and the Core path refuse and do exactly the same things.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update

from voxeldb._time import utcnow
from voxeldb.errors import ValidationError
from voxeldb.meta import Character, CharacterRelationship, InventoryItem
from voxeldb.services._common import parse_id
from voxeldb.services._progression import LevelUp, apply_experience
from voxeldb.services._relationships import apply_affinity
from voxeldb.services._story_graph import Node, Option, parse_graph, parse_node

__all__ = [
    "SET_STATS",
    "STORY_RELATIONSHIP_TYPE",
    "Play",
    "apply_effects",
    "check_play",
    "choice_values",
    "current",
    "holdings",
    "is_simple",
    "new_stats",
    "pick",
    "refuse_unavailable",
    "why_not",
]

STORY_RELATIONSHIP_TYPE = "acquaintance"
"""The relationship type an option's ``affinity`` effect adjusts."""

_chars = cast(Table, Character.__table__)
_items = cast(Table, InventoryItem.__table__)
_rels = cast(Table, CharacterRelationship.__table__)
SET_STATS = (
    update(_chars)
    .where(_chars.c.id == bindparam("cid", type_=_chars.c.id.type))
    .values(stats=bindparam("stats", type_=_chars.c.stats.type))
)


@dataclass
class Play:
    """One character's row and place in one story, read (and the character locked) at once."""

    world_id: uuid.UUID
    stats: dict[str, Any]
    level: int
    branching_data: dict[str, Any]
    node: str | None
    steps: int


def check_play(world_id: uuid.UUID, story_world: uuid.UUID, status: str) -> None:
    """The character may play the story: it is in the story's world, the story is active."""
    if world_id != story_world:
        raise ValidationError(
            "character: the character is not in the story's world", field="character"
        )
    if status != "active":
        raise ValidationError(f"story: the story is {status}, not active", field="story")


def current(play: Play) -> tuple[str, Node, set[str]]:
    """The character's node (the start when it has not started), and the ids of all nodes."""
    if play.node is None:
        graph = parse_graph(play.branching_data)  # the whole graph, once, when play begins
        node_id = graph.start
    else:
        node_id = play.node
    node, ids = parse_node(play.branching_data, node_id)
    return node_id, node, ids


def pick(node_id: str, node: Node, key: str) -> Option:
    """The option ``key`` names at the node; a ValidationError listing them when none."""
    picked = node.option(key)
    if picked is None:
        offered = ", ".join(repr(o.id) for o in node.options) or "none: it is an ending"
        raise ValidationError(
            f"option: {key!r} is not an option at node {node_id!r} (options: {offered})",
            field="option",
        )
    return picked


def refuse_unavailable(
    picked: Option,
    node_id: str,
    ids: set[str],
    play: Play,
    items: dict[str, int],
    affinity: dict[str, float],
) -> None:
    """Raise the ValidationError that says why ``picked`` cannot be taken now, if it cannot."""
    reason = why_not(picked, play, items, affinity)
    if reason is not None:
        raise ValidationError(
            f"option: {picked.id!r} is not available at node {node_id!r}: {reason}",
            field="option",
        )
    if picked.to not in ids:
        raise ValidationError(
            f"option: {picked.id!r} leads to {picked.to!r}, which is not a node",
            field="option",
        )


def is_simple(option: Option) -> bool:
    """Its conditions read only the character's row (level, stats) and its effects write only
    that row (stats, experience): no inventory or relationship is read or written."""
    cond, effects = option.conditions, option.effects
    return not (cond.items or cond.relationships or effects.items or effects.affinity)


def holdings(
    s: Connection, cid: uuid.UUID, options: list[Option]
) -> tuple[dict[str, int], dict[str, float]]:
    """The item counts and affinities the options' conditions and effects look at."""
    names = {n for o in options for n in o.conditions.items}
    names |= {n for o in options for n, q in o.effects.items.items() if q < 0}
    targets = {parse_id(t, "target") for o in options for t in o.conditions.relationships}
    items: dict[str, int] = {}
    if names:
        items = {
            name: int(total)
            for name, total in s.execute(
                select(_items.c.item_name, func.sum(_items.c.quantity))
                .where(_items.c.character_id == cid, _items.c.item_name.in_(names))
                .group_by(_items.c.item_name)
            ).all()
        }
    affinity: dict[str, float] = {}
    if targets:
        affinity = {
            str(target): float(best)
            for target, best in s.execute(
                select(_rels.c.target_character_id, func.max(_rels.c.affinity))
                .where(_rels.c.character_id == cid, _rels.c.target_character_id.in_(targets))
                .group_by(_rels.c.target_character_id)
            ).all()
        }
    return items, affinity


def why_not(
    option: Option, play: Play, items: dict[str, int], affinity: dict[str, float]
) -> str | None:
    """Why ``option`` is not available (None when it is)."""
    cond = option.conditions
    if cond.level is not None and not cond.level.holds(play.level):
        return f"level must be {cond.level.describe()} (it is {play.level})"
    for stat, bounds in cond.stats.items():
        value = play.stats.get(stat, 0)
        if not isinstance(value, int | float) or not bounds.holds(value):
            return f"stat {stat!r} must be {bounds.describe()} (it is {value!r})"
    for name, needed in cond.items.items():
        if items.get(name, 0) < needed:
            return f"needs {needed} {name!r} (has {items.get(name, 0)})"
    for name, change in option.effects.items.items():
        if change < 0 and items.get(name, 0) < -change:
            return f"takes {-change} {name!r} (has {items.get(name, 0)})"
    for target, bounds in cond.relationships.items():
        value = affinity.get(str(uuid.UUID(target)), 0.0)
        if not bounds.holds(value):
            return f"affinity towards {target} must be {bounds.describe()} (it is {value})"
    return None


def new_stats(play: Play, option: Option) -> dict[str, Any] | None:
    """The character's stats after the option's stat effects (None when it has none)."""
    if not option.effects.stats:
        return None
    stats = dict(play.stats)
    for stat, delta in option.effects.stats.items():
        stats[stat] = stats.get(stat, 0) + delta
    return stats


def choice_values(
    sid: uuid.UUID,
    cid: uuid.UUID,
    play: Play,
    node_id: str,
    picked: Option,
    events: list[LevelUp],
    now: datetime,
) -> dict[str, Any]:
    """The StoryChoice row a step records."""
    return {
        "id": uuid.uuid4(),
        "story_id": sid,
        "character_id": cid,
        "choice_text": picked.text,
        "choice_order": play.steps + 1,
        "consequences": {
            "option": picked.id,
            "from": node_id,
            "to": picked.to,
            "effects": picked.effects.model_dump(exclude_defaults=True),
            "level_ups": [e.level for e in events],
        },
        "created_at": now,
    }


def apply_effects(
    s: Connection, cid: uuid.UUID, play: Play, option: Option
) -> tuple[dict[str, Any], list[LevelUp]]:
    """Give, take and adjust what the option says, except the stats: those are returned in
    the changed columns, for the caller to write with the choice (its experience, read
    back by the level curve, comes after them)."""
    effects = option.effects
    changed: dict[str, Any] = {}
    stats = new_stats(play, option)
    if stats is not None:
        changed["stats"] = stats
        if effects.experience:  # the gain reads the stats back: write them first
            s.execute(SET_STATS, {"cid": cid, "stats": stats})
    for name, quantity in effects.items.items():
        if quantity > 0:
            _give(s, cid, name, quantity)
        elif quantity < 0:
            _take(s, cid, name, -quantity)
    for target, delta in effects.affinity.items():
        apply_affinity(s, cid, parse_id(target, "affinity"), float(delta), STORY_RELATIONSHIP_TYPE)
    events: list[LevelUp] = []
    if effects.experience:
        events, more = apply_experience(s, cid, effects.experience)
        changed.update(more)
    return changed, events


def _give(s: Connection, cid: uuid.UUID, name: str, quantity: int) -> None:
    row = s.execute(
        select(_items.c.id)
        .where(_items.c.character_id == cid, _items.c.item_name == name)
        .order_by(_items.c.created_at, _items.c.id)
        .limit(1)
    ).first()
    if row is None:
        s.execute(
            _items.insert().values(
                id=uuid.uuid4(),
                character_id=cid,
                item_type="material",
                item_name=name,
                quantity=quantity,
                item_data={},
            )
        )
    else:
        s.execute(
            update(_items)
            .where(_items.c.id == row.id)
            .values(quantity=_items.c.quantity + quantity, updated_at=utcnow())
        )


def _take(s: Connection, cid: uuid.UUID, name: str, quantity: int) -> None:
    rows = s.execute(
        select(_items.c.id, _items.c.quantity)
        .where(_items.c.character_id == cid, _items.c.item_name == name)
        .order_by(_items.c.quantity, _items.c.id)
    ).all()
    for row in rows:
        if quantity <= 0:
            break
        used = min(quantity, row.quantity)
        quantity -= used
        if used == row.quantity:
            s.execute(delete(_items).where(_items.c.id == row.id))
        else:
            s.execute(
                update(_items)
                .where(_items.c.id == row.id)
                .values(quantity=_items.c.quantity - used, updated_at=utcnow())
            )
    if quantity > 0:  # the character row is locked: only a bug gets here
        raise ValidationError(f"option: not enough {name!r} to take", field="option")
