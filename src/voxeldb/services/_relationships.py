"""Relationships between characters, and who is near a place.

Relationships are **directed**: ``adjust_affinity(a, b, ...)`` changes how ``a`` feels about
``b`` (the row ``a -> b``), and leaves ``b -> a`` alone; a rival may admire a hero who
despises her. ``relationship_between(a, b)`` is ``a -> b``; ``relationships_of(c)`` lists
both directions (as the seed's query does). Affinity is clamped to
[:data:`MIN_AFFINITY`, :data:`MAX_AFFINITY`]. One row per (a, b, relationship type).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy import Connection, Table, case, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from voxeldb._time import utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import Character, CharacterRelationship, World
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._permissions import require_permission
from voxeldb.services._validation import _Strict

__all__ = [
    "MAX_AFFINITY",
    "MIN_AFFINITY",
    "adjust_affinity",
    "apply_affinity",
    "characters_near",
    "relationship_between",
    "relationships_of",
]

MIN_AFFINITY = -100.0
MAX_AFFINITY = 100.0
MAX_RADIUS = 1_000_000.0

_rel = cast(Table, CharacterRelationship.__table__)
_chars = cast(Table, Character.__table__)


class _AffinityInput(_Strict):
    delta: StrictInt | StrictFloat = Field(ge=-1e6, le=1e6)
    relationship_type: str = Field(min_length=1, max_length=50)


class _NearInput(_Strict):
    x: StrictInt | StrictFloat = Field(ge=-1e12, le=1e12)
    z: StrictInt | StrictFloat = Field(ge=-1e12, le=1e12)
    radius: StrictInt | StrictFloat = Field(ge=0, le=MAX_RADIUS)
    limit: StrictInt | None = Field(default=None, ge=1, le=100_000)


def _id(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, Character | World):
        return value.id
    return parse_id(value, field)


def _clamp(expr: Any) -> Any:
    return case(
        (expr > MAX_AFFINITY, literal(MAX_AFFINITY)),
        (expr < MIN_AFFINITY, literal(MIN_AFFINITY)),
        else_=expr,
    )


def apply_affinity(
    s: Connection, a: uuid.UUID, b: uuid.UUID, delta: float, relationship_type: str
) -> uuid.UUID:
    """``a -> b`` affinity += ``delta`` (clamped) in one upsert; the row's id."""
    if a == b:
        raise ValidationError("b: a character has no relationship with itself", field="b")
    worlds = dict(
        s.execute(select(_chars.c.id, _chars.c.world_id).where(_chars.c.id.in_([a, b]))).all()
    )
    for field, cid in (("a", a), ("b", b)):
        if cid not in worlds:
            raise UnknownIdError(f"{field}: no character {cid}", field=field)
    if worlds[a] != worlds[b]:
        raise ValidationError("b: the characters are in different worlds", field="b")
    insert = pg_insert if s.dialect.name == "postgresql" else sqlite_insert
    start = max(MIN_AFFINITY, min(MAX_AFFINITY, float(delta)))
    stmt = insert(_rel).values(
        id=uuid.uuid4(),
        character_id=a,
        target_character_id=b,
        relationship_type=relationship_type,
        affinity=start,
        relationship_data={},
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["character_id", "target_character_id", "relationship_type"],
        set_={"affinity": _clamp(_rel.c.affinity + float(delta)), "updated_at": utcnow()},
    ).returning(_rel.c.id)
    rid: uuid.UUID = s.execute(upsert).scalar_one()
    return rid


def adjust_affinity(
    a: Any,
    b: Any,
    delta: float,
    relationship_type: str = "acquaintance",
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> CharacterRelationship:
    """Change how ``a`` feels about ``b`` by ``delta`` (the relationship is made at 0 first
    if it does not exist); returns the ``a -> b`` relationship of that type.

    Concurrent adjustments add up (one upsert each). With ``as_user``, that user must own
    ``a``: one speaks for one's own character's feelings.
    """
    aid, bid = _id(a, "a"), _id(b, "b")
    data = validated(_AffinityInput, delta=delta, relationship_type=relationship_type)
    with session_scope(session, write=True) as s:
        require_permission(s, as_user, character_id=aid)
        rid = apply_affinity(s.connection(), aid, bid, data.delta, data.relationship_type)
        rel = s.get(CharacterRelationship, rid, populate_existing=True)
        assert rel is not None
    return rel


def relationship_between(
    a: Any, b: Any, relationship_type: str | None = None, *, session: Session | None = None
) -> CharacterRelationship | None:
    """How ``a`` relates to ``b`` (the ``a -> b`` row), or None. With several types and no
    ``relationship_type``, the one of the first type in alphabetical order."""
    aid, bid = _id(a, "a"), _id(b, "b")
    query = select(CharacterRelationship).where(
        CharacterRelationship.character_id == aid,
        CharacterRelationship.target_character_id == bid,
    )
    if relationship_type is not None:
        query = query.where(CharacterRelationship.relationship_type == relationship_type)
    with session_scope(session) as s:
        return s.scalars(query.order_by(CharacterRelationship.relationship_type).limit(1)).first()


def relationships_of(
    character: Any, *, session: Session | None = None
) -> list[CharacterRelationship]:
    """Every relationship the character is in, either way: its own feelings (``character_id``
    is it) and others' feelings about it (``target_character_id`` is it); strongest first."""
    cid = _id(character, "character")
    with session_scope(session) as s:
        if s.get(Character, cid) is None:
            raise UnknownIdError(f"character: no character {cid}", field="character")
        return list(
            s.scalars(
                select(CharacterRelationship)
                .where(
                    or_(
                        CharacterRelationship.character_id == cid,
                        CharacterRelationship.target_character_id == cid,
                    )
                )
                .order_by(
                    CharacterRelationship.affinity.desc(),
                    CharacterRelationship.relationship_type,
                    CharacterRelationship.id,
                )
            )
        )


def near_query(world_id: uuid.UUID, x: float, z: float, radius: float, limit: int | None) -> Any:
    """The SELECT of :func:`characters_near`: a box on the (world_id, pos_x, pos_z) index,
    then the circle, nearest first."""
    dx = Character.pos_x - x
    dz = Character.pos_z - z
    distance2 = dx * dx + dz * dz
    query = (
        select(Character)
        .where(
            Character.world_id == world_id,
            Character.pos_x.between(x - radius, x + radius),
            Character.pos_z.between(z - radius, z + radius),
            distance2 <= radius * radius,
        )
        .order_by(distance2, Character.id)
    )
    return query if limit is None else query.limit(limit)


def characters_near(
    world: Any,
    x: float,
    z: float,
    radius: float,
    *,
    limit: int | None = None,
    session: Session | None = None,
) -> list[Character]:
    """The characters of ``world`` (a World or its id) within ``radius`` blocks of ``(x, z)``
    on the horizontal plane, nearest first (at most ``limit``).

    Positions are the ``pos_x``/``pos_z`` columns kept in step with ``Character.position``;
    the query is a range on the ``(world_id, pos_x, pos_z)`` index, on both backends.
    """
    wid = _id(world, "world")
    data = validated(_NearInput, x=x, z=z, radius=radius, limit=limit)
    with session_scope(session) as s:
        return list(
            s.scalars(near_query(wid, float(data.x), float(data.z), float(data.radius), data.limit))
        )
