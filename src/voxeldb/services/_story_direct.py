"""``choose`` on PostgreSQL on our own connection, through psycopg (``_txn.Direct``).

A step is one statement in autocommit (one round trip, its own commit) that writes the
character, its place and the StoryChoice only where the database still holds what the step
was worked out from: the character's row (what the option's conditions and effects read),
its place in the story, the story row's version (its graph and status), the acting user's
rule. The statement locks the character, then its place, and checks them as they are once
the lock is had (READ COMMITTED rechecks a locked row's newest version), so a step taken
on what another process has just changed writes nothing, and is worked out again.

What the step is worked out from: the hint the character's last step through this story
left (:data:`_SEEN`: what it wrote), else one read (a plain SELECT, no lock). A step the
hint refuses, or whose statement finds the database changed, is worked out again from a
read; a refusal from a read is the caller's error. After a few changed readings in a row,
the step is left to the Core path (which waits for the character's lock), and so is a step
whose option reads or writes the inventory or relationships, or one of an unknown story or
character (the Core path says which id names nothing). The checks and effects are
``_story_rules``', as on the Core path.

Why not ``SELECT ... FOR UPDATE`` then the write: besides two more round trips, the SELECT's
join reads the place as it was when the statement began, not after the wait for the lock:
two steps of one character at once could both start from the same place.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any, NamedTuple

from voxeldb._time import utcnow
from voxeldb.errors import ValidationError
from voxeldb.services._permissions import denied
from voxeldb.services._progression import LevelUp, level_changes
from voxeldb.services._story_graph import Node, Option
from voxeldb.services._story_rules import (
    Play,
    check_play,
    choice_values,
    current,
    is_simple,
    new_stats,
    pick,
    refuse_unavailable,
)
from voxeldb.services._txn import SYNC_OFF, Direct, Hints

__all__ = ["choose_direct"]

READINGS = 3
"""Readings of a step whose statement found the database changed each time, before it is
left to the Core path."""


class _Seen(NamedTuple):
    """A character's row and place in a story, and the story's version."""

    story_version: str  # the story row's xmin: any change to the row changes it
    node: str | None  # None: not started
    steps: int
    world_id: uuid.UUID
    stats: dict[str, Any]
    stats_json: str
    level: int
    experience: int
    character_class: str
    progression: str | None  # the world's progression settings (JSON text)


_SEEN: Hints[tuple[uuid.UUID, uuid.UUID], _Seen] = Hints()
# A story row version's graph never changes: it is kept once, for every character's hint
# (a hint whose graph has gone reads it again), and its nodes are parsed once.
_GRAPHS: Hints[tuple[uuid.UUID, str], dict[str, Any]] = Hints(256)
_NODES: Hints[tuple[uuid.UUID, str, str | None], tuple[str, Node, set[str]]] = Hints(4096)

_READ = (
    "SELECT c.world_id, c.stats, c.level, s.world_id, s.status, s.branching_data, p.node,"
    " p.steps, c.experience, c.character_class,"
    " (SELECT (w.world_settings -> 'progression')::text FROM worlds w WHERE w.id = c.world_id),"
    " s.xmin::text{as_user}"
    " FROM characters c JOIN stories s ON s.id = %(sid)s"
    " LEFT JOIN story_progress p ON p.story_id = %(sid)s AND p.character_id = %(cid)s"
    " WHERE c.id = %(cid)s"
)
_READ_SQL = {
    as_user: _READ.format(
        as_user=", c.user_id, (SELECT u.is_active FROM users u WHERE u.id = %(uid)s)"
        if as_user
        else ""
    )
    for as_user in (False, True)
}

# The step's statement. ``still`` locks the character where its row still holds what the
# step rests on; ``place`` moves it only from the place it was worked out at (or starts it
# where it had none) and returns a row when it did; the character and the choice are
# written only then. The lock order is the character's, then its place's, as everywhere.
_STILL = (
    "still AS (SELECT 1 FROM characters c, stories s"
    " WHERE c.id = %(cid)s AND s.id = %(sid)s AND s.xmin = %(story_version)s::xid"
    " AND c.world_id = %(world_id)s AND c.stats = %(seen_stats)s::jsonb"
    " AND c.level = %(seen_level)s{more} FOR UPDATE OF c)"
)
_STILL_GAIN = (  # a level or experience gain also rests on these
    " AND c.experience = %(seen_experience)s AND c.character_class = %(seen_class)s"
    " AND (SELECT w.world_settings -> 'progression' FROM worlds w WHERE w.id = c.world_id)"
    " IS NOT DISTINCT FROM %(seen_progression)s::jsonb"
)
_STILL_AS_USER = (
    " AND c.user_id = %(uid)s"
    " AND EXISTS (SELECT 1 FROM users u WHERE u.id = %(uid)s AND u.is_active)"
)
_MOVE = (
    "place AS (UPDATE story_progress SET node = %(node)s, steps = steps + 1,"
    " updated_at = %(now)s WHERE story_id = %(sid)s AND character_id = %(cid)s"
    " AND node = %(seen_node)s AND steps = %(seen_steps)s AND EXISTS (SELECT 1 FROM still)"
    " RETURNING 1)"
)
_START = (
    "place AS (INSERT INTO story_progress"
    " (story_id, character_id, node, steps, started_at, updated_at)"
    " SELECT %(sid)s, %(cid)s, %(node)s, 1, %(now)s, %(now)s WHERE EXISTS (SELECT 1 FROM still)"
    " ON CONFLICT (story_id, character_id) DO NOTHING RETURNING 1)"
)
_SET = {"experience": "%(experience)s", "level": "%(level)s", "stats": "%(stats)s::jsonb"}
_SET_CHARACTER = (
    "ch AS (UPDATE characters SET {sets}, updated_at = now()"
    " WHERE id = %(cid)s AND EXISTS (SELECT 1 FROM place))"
)
_RECORD = (
    "INSERT INTO story_choices"
    " (id, story_id, character_id, choice_text, choice_order, consequences, created_at)"
    " SELECT %(id)s, %(sid)s, %(cid)s, %(choice_text)s, %(choice_order)s,"
    " %(consequences)s::jsonb, %(now)s WHERE EXISTS (SELECT 1 FROM place) RETURNING 1"
)


@functools.cache
def _step_sql(columns: tuple[str, ...], start: bool, as_user: bool, sync_off: bool) -> str:
    """The step's statement, writing the character's ``columns``."""
    more = (_STILL_GAIN if "experience" in columns else "") + (_STILL_AS_USER if as_user else "")
    ctes = [_STILL.format(more=more), _START if start else _MOVE]
    if columns:
        ctes.append(_SET_CHARACTER.format(sets=", ".join(f"{c} = {_SET[c]}" for c in columns)))
    return f"WITH {', '.join(ctes)} {_RECORD}" + (", " + SYNC_OFF if sync_off else "")


def choose_direct(
    direct: Direct, sid: uuid.UUID, cid: uuid.UUID, key: str, uid: uuid.UUID | None, durable: bool
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The step, committed: the StoryChoice's values and the character's changed columns;
    None (nothing written) for a step the Core path must take."""
    seen = _SEEN.get((sid, cid))
    for _ in range(READINGS):
        graph = None if seen is None else _GRAPHS.get((sid, seen.story_version))
        hinted = graph is not None
        if seen is None or graph is None:
            read = _read(direct, sid, cid, uid)
            if read is None:
                return None
            seen, graph = read
        try:
            step = _work_out(sid, seen, graph, key)
        except ValidationError:
            if hinted:
                seen = None  # a refusal must come from what the database holds
                continue
            raise
        if step is None:
            return None
        picked, play, node_id, changed, events = step
        now = utcnow()
        values = choice_values(sid, cid, play, node_id, picked, events, now)
        params = _params(sid, cid, uid, seen, picked, changed, values, now)
        sql = _step_sql(tuple(sorted(changed)), seen.node is None, uid is not None, not durable)
        if direct.alone(sql, params) is not None:
            _remember(sid, cid, seen, play, picked, changed, params)
            return values, changed
        seen = None  # the database changed since: read it again
    return None


def _read(
    direct: Direct, sid: uuid.UUID, cid: uuid.UUID, uid: uuid.UUID | None
) -> tuple[_Seen, dict[str, Any]] | None:
    row = direct.alone(
        _READ_SQL[uid is not None], {"sid": sid, "cid": cid, "uid": uid}, writes=False
    )
    if row is None:
        return None
    if uid is not None and not (row[13] and row[12] == uid):
        # The rule of _permissions._may_act for a character: an active user who owns it.
        raise denied(uid, character_id=cid)
    world_id, stats, level, story_world, status, data, node, steps = row[:8]
    check_play(world_id, story_world, status)
    stats = stats or {}
    graph = data or {}
    _GRAPHS.put((sid, row[11]), graph)
    seen = _Seen(
        story_version=row[11],
        node=node,
        steps=steps or 0,
        world_id=world_id,
        stats=stats,
        stats_json=json.dumps(stats),
        level=level,
        experience=row[8],
        character_class=row[9],
        progression=row[10],
    )
    return seen, graph


def _work_out(
    sid: uuid.UUID, seen: _Seen, graph: dict[str, Any], key: str
) -> tuple[Option, Play, str, dict[str, Any], list[LevelUp]] | None:
    """The option taken, and what it changes; None for an option the Core path must take."""
    play = Play(
        world_id=seen.world_id,
        stats=dict(seen.stats),
        level=seen.level,
        branching_data=graph,
        node=seen.node,
        steps=seen.steps,
    )
    parsed_key = (sid, seen.story_version, seen.node)
    parsed = _NODES.get(parsed_key)
    if parsed is None:
        parsed = current(play)
        _NODES.put(parsed_key, parsed)
    node_id, at, ids = parsed
    picked = pick(node_id, at, key)
    if not is_simple(picked):
        return None
    refuse_unavailable(picked, node_id, ids, play, {}, {})
    changed: dict[str, Any] = {}
    stats_after = new_stats(play, picked)
    if stats_after is not None:
        changed["stats"] = stats_after
    events: list[LevelUp] = []
    if picked.effects.experience:
        settings = None if seen.progression is None else json.loads(seen.progression)
        events, more = level_changes(
            seen.experience + picked.effects.experience,
            seen.level,
            changed.get("stats", play.stats),
            seen.character_class,
            None if settings is None else {"progression": settings},
        )
        changed.update(more)
    return picked, play, node_id, changed, events


def _params(
    sid: uuid.UUID,
    cid: uuid.UUID,
    uid: uuid.UUID | None,
    seen: _Seen,
    picked: Option,
    changed: dict[str, Any],
    values: dict[str, Any],
    now: Any,
) -> dict[str, Any]:
    params = {**changed, **values, "sid": sid, "cid": cid, "uid": uid, "node": picked.to}
    params.update(
        now=now,
        consequences=json.dumps(values["consequences"]),
        story_version=seen.story_version,
        world_id=seen.world_id,
        seen_node=seen.node,
        seen_steps=seen.steps,
        seen_stats=seen.stats_json,
        seen_level=seen.level,
        seen_experience=seen.experience,
        seen_class=seen.character_class,
        seen_progression=seen.progression,
    )
    if "stats" in changed:
        params["stats"] = json.dumps(changed["stats"])
    return params


def _remember(
    sid: uuid.UUID,
    cid: uuid.UUID,
    seen: _Seen,
    play: Play,
    picked: Option,
    changed: dict[str, Any],
    params: dict[str, Any],
) -> None:
    """Leave the hint for the character's next step: what this one wrote."""
    _SEEN.put(
        (sid, cid),
        seen._replace(
            node=picked.to,
            steps=play.steps + 1,
            stats=changed.get("stats", seen.stats),
            stats_json=params["stats"] if "stats" in changed else seen.stats_json,
            level=changed.get("level", seen.level),
            experience=changed.get("experience", seen.experience),
        ),
    )
