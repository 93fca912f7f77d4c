"""Character progression: experience, the level curve, stat growth.

The level curve and stat growth are defined here and nowhere else (docs/playing.md):

- Going from level ``L`` to ``L + 1`` takes ``round(base * L ** exponent)`` experience, so a
  character of ``experience`` points has the highest level whose cumulative total it has
  reached. The defaults are :data:`DEFAULT_PROGRESSION`: ``base`` 100, ``exponent`` 1.5,
  ``max_level`` 100 (experience keeps counting past it; the level does not).
- Each level gained adds :data:`DEFAULT_PROGRESSION`'s ``stat_growth`` to the character's
  stats (``strength``, ``intelligence``, ``dexterity`` +1 each), plus ``class_growth`` for
  the character's class when that names it.

A world overrides any of these with a ``"progression"`` object in its settings, e.g.
``{"progression": {"base": 50, "stat_growth": {"strength": 2}}}`` (keys not given keep the
defaults).
"""

from __future__ import annotations

import bisect
import functools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy import BigInteger, Connection, Engine, Table, bindparam, func, select, update
from sqlalchemy.orm import Session, attributes

from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import Character, World
from voxeldb.services._common import parse_id, validated
from voxeldb.services._permissions import denied, require_permission, user_id_of
from voxeldb.services._txn import (
    SYNC_OFF,
    Direct,
    Hints,
    direct_engine,
    run_alone,
    run_direct,
    run_write,
)
from voxeldb.services._validation import _Strict

__all__ = [
    "DEFAULT_PROGRESSION",
    "LevelUp",
    "experience_for_level",
    "gain_experience",
    "level_for_experience",
    "progression_of",
]

DEFAULT_PROGRESSION: dict[str, Any] = {
    "base": 100,
    "exponent": 1.5,
    "max_level": 100,
    "stat_growth": {"strength": 1, "intelligence": 1, "dexterity": 1},
    "class_growth": {},
}
"""The level curve and stat growth every world has unless its settings say otherwise."""

MAX_GAIN = 10**9
"""The most experience one call may give."""

_characters = cast(Table, Character.__table__)
_worlds = cast(Table, World.__table__)


class Progression(_Strict):
    base: StrictInt | StrictFloat = Field(default=100, gt=0, le=10**9)
    exponent: StrictInt | StrictFloat = Field(default=1.5, ge=0, le=5)
    max_level: StrictInt = Field(default=100, ge=1, le=10_000)
    stat_growth: dict[str, StrictInt | StrictFloat] = Field(
        default_factory=lambda: dict(DEFAULT_PROGRESSION["stat_growth"])
    )
    class_growth: dict[str, dict[str, StrictInt | StrictFloat]] = Field(default_factory=dict)


class _GainInput(_Strict):
    amount: StrictInt = Field(ge=0, le=MAX_GAIN)


@dataclass(frozen=True)
class LevelUp:
    """A level the character reached, and what each stat gained with it."""

    level: int
    stat_gains: dict[str, int | float] = field(default_factory=dict)
    kind: str = "level_up"


def progression_of(settings: dict[str, Any] | None) -> Progression:
    """The progression rules of a world with these settings (the defaults where not set)."""
    raw = (settings or {}).get("progression") or {}
    if not isinstance(raw, dict):
        raise ValidationError("settings.progression must be an object", field="progression")
    return _progression(_freeze(raw))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return {k: _thaw(v) for k, v in value}
    return value


@functools.lru_cache(maxsize=256)
def _progression(frozen: Any) -> Progression:
    return validated(Progression, **_thaw(frozen))


@functools.lru_cache(maxsize=64)
def _thresholds(base: float, exponent: float, max_level: int) -> tuple[int, ...]:
    """``t[i]``: the total experience level ``i + 1`` needs (``t[0] == 0``)."""
    total, out = 0, [0]
    for level in range(1, max_level):
        total += round(base * level**exponent)
        out.append(total)
    return tuple(out)


def experience_for_level(level: int, settings: dict[str, Any] | None = None) -> int:
    """The total experience a character needs to be ``level`` (level 1 needs 0)."""
    rules = progression_of(settings)
    if not 1 <= level <= rules.max_level:
        raise ValidationError(f"level must be 1..{rules.max_level}, got {level}", field="level")
    return _thresholds(rules.base, rules.exponent, rules.max_level)[level - 1]


def level_for_experience(experience: int, settings: dict[str, Any] | None = None) -> int:
    """The level a character with ``experience`` points is (the curve above)."""
    rules = progression_of(settings)
    return bisect.bisect_right(_thresholds(rules.base, rules.exponent, rules.max_level), experience)


def _gain_statement(sync_off: bool) -> Any:
    settings = (
        select(_worlds.c.world_settings)
        .where(_worlds.c.id == _characters.c.world_id)
        .scalar_subquery()
    )
    returning: list[Any] = [
        _characters.c.experience,
        _characters.c.level,
        _characters.c.stats,
        _characters.c.character_class,
        settings,
    ]
    if sync_off:  # PostgreSQL: this transaction's commit need not wait for the disk
        returning.append(func.set_config("synchronous_commit", "off", True))
    return (
        update(_characters)
        .where(_characters.c.id == bindparam("cid", type_=_characters.c.id.type))
        .values(experience=_characters.c.experience + bindparam("amount", type_=BigInteger()))
        .returning(*returning)
    )


_GAIN = {sync_off: _gain_statement(sync_off) for sync_off in (False, True)}
_LEVEL_UP = (
    update(_characters)
    .where(_characters.c.id == bindparam("cid", type_=_characters.c.id.type))
    .values(
        level=bindparam("level", type_=_characters.c.level.type),
        stats=bindparam("stats", type_=_characters.c.stats.type),
    )
)


def apply_experience(
    conn: Connection, character_id: uuid.UUID, amount: int, *, sync_off: bool = False
) -> tuple[list[LevelUp], dict[str, Any]]:
    """Add ``amount`` in the caller's transaction; the character row stays locked until it ends.

    One ``UPDATE ... SET experience = experience + n RETURNING``: concurrent gains add up
    on both backends (no read-then-write of the experience itself). The world's settings
    (for its curve) come back in the same statement. Returns the events and the new values
    of the columns it changed.
    """
    sync_off = sync_off and conn.dialect.name == "postgresql"
    row = conn.execute(_GAIN[sync_off], {"cid": character_id, "amount": amount}).one_or_none()
    if row is None:
        raise UnknownIdError(f"character: no character {character_id}", field="character")
    events, changed = level_changes(*row[:5])
    if events:
        conn.execute(
            _LEVEL_UP, {"cid": character_id, "level": changed["level"], "stats": changed["stats"]}
        )
    return events, changed


def level_changes(
    experience: int,
    level: int,
    stats: dict[str, Any] | None,
    char_class: str,
    world_settings: dict[str, Any] | None,
) -> tuple[list[LevelUp], dict[str, Any]]:
    """The levels a character of ``level`` reaches with ``experience`` points in a world of
    these settings, and the columns that change (``experience``; ``level`` and ``stats``
    when it levels up)."""
    rules = progression_of(world_settings)
    thresholds = _thresholds(rules.base, rules.exponent, rules.max_level)
    new_level = bisect.bisect_right(thresholds, experience)
    changed: dict[str, Any] = {"experience": experience}
    if new_level <= level:
        return [], changed
    growth = dict(rules.stat_growth)
    for stat, extra in rules.class_growth.get(char_class, {}).items():
        growth[stat] = growth.get(stat, 0) + extra
    events: list[LevelUp] = []
    new_stats = dict(stats or {})
    for reached in range(level + 1, new_level + 1):
        for stat, gain in growth.items():
            new_stats[stat] = new_stats.get(stat, 0) + gain
        events.append(LevelUp(level=reached, stat_gains=dict(growth)))
    changed.update(level=new_level, stats=new_stats)
    return events, changed


def refresh_character(
    s: Session | None, character: Any, character_id: uuid.UUID, changed: dict[str, Any]
) -> None:
    """Show what a Core UPDATE changed on the Character objects the caller holds."""
    targets = [character] if isinstance(character, Character) else []
    if s is not None:
        in_session = s.identity_map.get((Character, (character_id,), None))
        if in_session is not None and in_session not in targets:
            targets.append(in_session)
    for obj in targets:
        for key, value in changed.items():
            attributes.set_committed_value(obj, key, value)


def character_id_of(character: Any) -> uuid.UUID:
    if isinstance(character, Character):
        return character.id
    return parse_id(character, "character")


def gain_experience(
    character: Any,
    amount: int,
    *,
    session: Session | None = None,
    as_user: Any = None,
    durable: bool = True,
) -> list[LevelUp]:
    """Give a character ``amount`` experience; returns the levels it reached (oldest first).

    ``character`` is a Character or its id. Stats grow by the world's ``stat_growth`` per
    level gained. Concurrent gains on one character all count (the row is updated in
    place, then locked until the transaction ends). A Character object passed in (or held
    by ``session``) shows the new experience, level and stats afterwards. Without
    ``session``, the commit waits for the disk unless ``durable=False`` (docs/playing.md,
    "Durability").
    """
    cid = character_id_of(character)
    gain = validated(_GainInput, amount=amount).amount
    uid = None if as_user is None else user_id_of(as_user)
    engine = direct_engine(session)
    if engine is not None:
        events, changed = _gain_on_postgres(engine, cid, gain, uid, durable)
    else:

        def work(conn: Connection, sync_off: bool) -> tuple[list[LevelUp], dict[str, Any]]:
            require_permission(conn, as_user, character_id=cid)
            return apply_experience(conn, cid, gain, sync_off=sync_off)

        events, changed = run_write(session, work, durable=durable)
    refresh_character(session, character, cid, changed)
    return events


# PostgreSQL, on our own connection (``_txn.run_alone`` / ``run_direct``). Most gains reach no new level: one
# UPDATE in autocommit (one round trip) does them, as long as what the last gain on that
# character saw still holds, which the statement checks itself: the character's level, the
# experience its next level needs, its world's progression settings (and the acting user's
# rule). When a check fails (a level-up among them), nothing is written and the gain runs as
# a transaction: the UPDATE returns what the level curve needs, a level-up is one more
# statement, and what it saw is remembered for the next gain.
_HINTS: Hints[uuid.UUID, tuple[int, int, str | None]] = Hints()
_BIGINT_MAX = 2**63 - 1

_QUICK_SQL = (
    "UPDATE characters SET experience = experience + %(amount)s::bigint, updated_at = now()"
    " WHERE id = %(cid)s AND level = %(level)s::integer"
    " AND experience + %(amount)s::bigint < %(next)s::bigint"
    " AND (SELECT world_settings -> 'progression' FROM worlds"
    " WHERE worlds.id = characters.world_id) IS NOT DISTINCT FROM %(progression)s::jsonb"
    "{as_user} RETURNING experience{sync_off}"
)
_QUICK_AS_USER = (
    " AND user_id = %(uid)s"
    " AND EXISTS (SELECT 1 FROM users WHERE users.id = %(uid)s AND users.is_active)"
)
_QUICK = {
    (as_user, sync_off): _QUICK_SQL.format(
        as_user=_QUICK_AS_USER if as_user else "", sync_off=", " + SYNC_OFF if sync_off else ""
    )
    for as_user in (False, True)
    for sync_off in (False, True)
}
_GAIN_SQL = (
    "UPDATE characters SET experience = experience + %(amount)s::bigint, updated_at = now()"
    " WHERE id = %(cid)s RETURNING experience, level, stats, character_class,"
    " (SELECT (world_settings -> 'progression')::text"
    " FROM worlds WHERE worlds.id = characters.world_id)"
)
_AS_USER_SQL = ", user_id, (SELECT is_active FROM users WHERE users.id = %(uid)s)"
_LEVEL_UP_SQL = (
    "UPDATE characters SET level = %(level)s, stats = %(stats)s::jsonb, updated_at = now()"
    " WHERE id = %(cid)s"
)


def _gain_on_postgres(
    engine: Engine, cid: uuid.UUID, gain: int, uid: uuid.UUID | None, durable: bool
) -> tuple[list[LevelUp], dict[str, Any]]:
    hint = _HINTS.get(cid)
    if hint is not None:
        level, next_at, progression = hint
        params = {
            "cid": cid,
            "amount": gain,
            "level": level,
            "next": next_at,
            "progression": progression,
            "uid": uid,
        }
        sql = _QUICK[uid is not None, not durable]
        row = run_alone(engine, lambda direct: direct.alone(sql, params))
        if row is not None:
            return [], {"experience": row[0]}
    return run_direct(engine, lambda direct: _gain_direct(direct, cid, gain, uid, durable))


def _gain_direct(
    direct: Direct, cid: uuid.UUID, gain: int, uid: uuid.UUID | None, durable: bool
) -> tuple[list[LevelUp], dict[str, Any]]:
    sql = _GAIN_SQL + (_AS_USER_SQL if uid is not None else "")
    sql += "" if durable else ", " + SYNC_OFF
    row = direct.first(sql, {"cid": cid, "amount": gain, "uid": uid})
    if uid is not None and (row is None or not (row[6] and row[5] == uid)):
        # The rule of _permissions._may_act for a character: an active user who owns it.
        raise denied(uid, character_id=cid)
    if row is None:
        raise UnknownIdError(f"character: no character {cid}", field="character")
    experience, level, stats, char_class, progression = row[:5]
    settings = None if progression is None else {"progression": json.loads(progression)}
    events, changed = level_changes(experience, level, stats, char_class, settings)
    if events:
        params = {"cid": cid, "level": changed["level"], "stats": json.dumps(changed["stats"])}
        direct.execute(_LEVEL_UP_SQL, params)
    direct.commit()
    _remember(cid, changed.get("level", level), settings, progression)
    return events, changed


def _remember(
    cid: uuid.UUID, level: int, settings: dict[str, Any] | None, progression: str | None
) -> None:
    """Keep what the next gain on ``cid`` may assume (see ``_HINTS`` above)."""
    rules = progression_of(settings)
    thresholds = _thresholds(rules.base, rules.exponent, rules.max_level)
    if level < 1:
        return
    next_at = thresholds[level] if level < len(thresholds) else _BIGINT_MAX
    _HINTS.put(cid, (level, next_at, progression))
