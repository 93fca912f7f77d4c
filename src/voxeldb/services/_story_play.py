"""Characters playing stories: start, see the options they may take, choose one.

Why over 500 lines: the hot path's statements are built once, at import, beside the one
function that runs each; the effects (stats, items, affinity) could move out next.

:func:`choose` records a StoryChoice, moves the character to the option's node
(``StoryProgress``) and applies the option's effects, all in one transaction, on the game's
hot path (Core statements, ``_txn.run_write``). Authoring and agents are in ``_stories``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from voxeldb._engine import sqlite_write_lock
from voxeldb._time import utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import (
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    StoryChoice,
    StoryProgress,
    write_lock,
)
from voxeldb.services._common import parse_id, session_scope
from voxeldb.services._permissions import require_permission
from voxeldb.services._progression import LevelUp, apply_experience, refresh_character
from voxeldb.services._relationships import apply_affinity
from voxeldb.services._story_graph import Node, Option, parse_graph, parse_node
from voxeldb.services._txn import run_write
from voxeldb.services._validation import (
    check_text,
)

__all__ = [
    "STORY_RELATIONSHIP_TYPE",
    "StoryOption",
    "StoryState",
    "available_choices",
    "choose",
    "start_story",
    "story_state",
]

STORY_RELATIONSHIP_TYPE = "acquaintance"
"""The relationship type an option's ``affinity`` effect adjusts."""

_chars = cast(Table, Character.__table__)
_stories = cast(Table, Story.__table__)
_progress = cast(Table, StoryProgress.__table__)
_items = cast(Table, InventoryItem.__table__)
_rels = cast(Table, CharacterRelationship.__table__)
_choices = cast(Table, StoryChoice.__table__)
_CHOICE_COLUMNS = (
    "id",
    "story_id",
    "character_id",
    "choice_text",
    "choice_order",
    "consequences",
    "created_at",
)


@dataclass(frozen=True)
class StoryOption:
    """An option a character may take now: pass ``id`` to :func:`choose`."""

    id: str
    text: str
    to: str


@dataclass(frozen=True)
class StoryState:
    """Where a character stands in a story."""

    node: str
    text: str
    steps: int
    choices: list[StoryOption]
    started: bool

    @property
    def ended(self) -> bool:
        """The node has no options left to take (an ending, or every option is barred)."""
        return not self.choices


def _option_key(option: Any) -> str:
    """``option`` checked as ``_OptionKey`` would, without pydantic on the hot path."""
    if not isinstance(option, str) or not 1 <= len(option.strip()) <= 1000:
        raise ValidationError(
            f"option: an option's id or text (1 to 1000 characters), got {option!r}",
            field="option",
        )
    try:
        return check_text(option.strip(), "option")
    except ValueError as exc:
        raise ValidationError(str(exc), field="option") from None


def _id(value: Any, field: str, model: type[Any]) -> uuid.UUID:
    if isinstance(value, model):
        return value.id  # type: ignore[no-any-return]
    return parse_id(value, field)


# --- authoring -----------------------------------------------------------------------------


@dataclass
class _Play:
    """One character's row and place in one story, read (and the character locked) at once."""

    world_id: uuid.UUID
    stats: dict[str, Any]
    level: int
    branching_data: dict[str, Any]
    node: str | None
    steps: int


def _play_query(*, lock: bool, sync_off: bool) -> Any:
    """The one SELECT of a play step (built once per variant: statements are reused)."""
    sid, cid = bindparam("sid", type_=_stories.c.id.type), bindparam("cid", type_=_chars.c.id.type)
    columns: list[Any] = [
        _chars.c.world_id,
        _chars.c.stats,
        _chars.c.level,
        _stories.c.world_id.label("story_world"),
        _stories.c.status,
        _stories.c.branching_data,
        _progress.c.node,
        _progress.c.steps,
    ]
    if sync_off:  # PostgreSQL: this transaction's commit need not wait for the disk
        columns.append(func.set_config("synchronous_commit", "off", True))
    query = (
        select(*columns)
        .select_from(
            _chars.join(_stories, _stories.c.id == sid).outerjoin(
                _progress,
                and_(_progress.c.story_id == sid, _progress.c.character_id == cid),
            )
        )
        .where(_chars.c.id == cid)
    )
    return query.with_for_update(of=_chars) if lock else query


_PLAY_QUERIES = {
    (lock, sync_off): _play_query(lock=lock, sync_off=sync_off)
    for lock in (False, True)
    for sync_off in (False, True)
}
_MOVE = (
    update(_progress)
    .where(
        _progress.c.story_id == bindparam("sid", type_=_progress.c.story_id.type),
        _progress.c.character_id == bindparam("cid", type_=_progress.c.character_id.type),
    )
    .values(
        node=bindparam("node", type_=_progress.c.node.type),
        steps=_progress.c.steps + 1,
        updated_at=bindparam("now", type_=_progress.c.updated_at.type),
    )
)


# PostgreSQL: the choice, the move (and the new stats) in one statement, one round trip:
# data-modifying CTEs. Written out: SQLAlchemy's DML-CTE form (add_cte) left an anonymous
# parameter unbound when executed.
def _record_and_move(with_stats: bool) -> Any:
    stats = ", st AS (UPDATE characters SET stats = :stats WHERE id = :cid)" if with_stats else ""
    binds = [
        *(bindparam(c, type_=_choices.c[c].type) for c in _CHOICE_COLUMNS),
        bindparam("node", type_=_progress.c.node.type),
        bindparam("now", type_=_progress.c.updated_at.type),
        bindparam("sid", type_=_progress.c.story_id.type),
        bindparam("cid", type_=_progress.c.character_id.type),
    ]
    if with_stats:
        binds.append(bindparam("stats", type_=_chars.c.stats.type))
    return text(
        "WITH moved AS (UPDATE story_progress SET node = :node, steps = steps + 1,"
        " updated_at = :now WHERE story_id = :sid AND character_id = :cid)"
        f"{stats} INSERT INTO story_choices"
        " (id, story_id, character_id, choice_text, choice_order, consequences, created_at)"
        " VALUES (:id, :story_id, :character_id, :choice_text, :choice_order, :consequences,"
        " :created_at)"
    ).bindparams(*binds)


_RECORD_AND_MOVE = {with_stats: _record_and_move(with_stats) for with_stats in (False, True)}
_SET_STATS = (
    update(_chars)
    .where(_chars.c.id == bindparam("cid", type_=_chars.c.id.type))
    .values(stats=bindparam("stats", type_=_chars.c.stats.type))
)


def _read_play(
    s: Connection, sid: uuid.UUID, cid: uuid.UUID, *, lock: bool, sync_off: bool = False
) -> _Play:
    sync_off = sync_off and s.dialect.name == "postgresql"
    row = s.execute(_PLAY_QUERIES[lock, sync_off], {"sid": sid, "cid": cid}).one_or_none()
    if row is None:
        if s.scalar(select(_stories.c.id).where(_stories.c.id == sid)) is None:
            raise UnknownIdError(f"story: no story {sid}", field="story")
        raise UnknownIdError(f"character: no character {cid}", field="character")
    if row.world_id != row.story_world:
        raise ValidationError(
            "character: the character is not in the story's world", field="character"
        )
    if row.status != "active":
        raise ValidationError(f"story: the story is {row.status}, not active", field="story")
    return _Play(
        world_id=row.world_id,
        stats=dict(row.stats or {}),
        level=row.level,
        branching_data=row.branching_data or {},
        node=row.node,
        steps=row.steps or 0,
    )


def _current(play: _Play) -> tuple[str, Node, set[str]]:
    if play.node is None:
        graph = parse_graph(play.branching_data)  # the whole graph, once, when play begins
        node_id = graph.start
    else:
        node_id = play.node
    node, ids = parse_node(play.branching_data, node_id)
    return node_id, node, ids


def _holdings(
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


def _why_not(
    option: Option, play: _Play, items: dict[str, int], affinity: dict[str, float]
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


def _options(s: Connection, cid: uuid.UUID, play: _Play, node: Node) -> list[StoryOption]:
    items, affinity = _holdings(s, cid, node.options)
    return [
        StoryOption(o.id, o.text, o.to)
        for o in node.options
        if _why_not(o, play, items, affinity) is None
    ]


def start_story(
    story: Any,
    character: Any,
    *,
    restart: bool = False,
    session: Session | None = None,
    as_user: Any = None,
) -> StoryProgress:
    """Put a character at the story's start node (the whole graph is validated first).

    A character already in the story stays where it is unless ``restart``. Returns its
    place (``StoryProgress``: ``node``, ``steps``).
    """
    sid = _id(story, "story", Story)
    cid = _id(character, "character", Character)
    with session_scope(session, write=True) as s:
        require_permission(s, as_user, character_id=cid)
        write_lock(s)
        play = _read_play(s.connection(), sid, cid, lock=True)
        start = parse_graph(play.branching_data).start
        progress = s.get(StoryProgress, (sid, cid), populate_existing=True)
        now = utcnow()
        if progress is None:
            progress = StoryProgress(
                story_id=sid, character_id=cid, node=start, steps=0, started_at=now, updated_at=now
            )
            s.add(progress)
        elif restart:
            progress.node, progress.steps = start, 0
            progress.started_at = progress.updated_at = now
    return progress


def story_state(story: Any, character: Any, *, session: Session | None = None) -> StoryState:
    """Where the character stands: its node, the node's text, and the options open to it
    (a character that has not started is shown the start node)."""
    sid = _id(story, "story", Story)
    cid = _id(character, "character", Character)
    with session_scope(session) as s:
        conn = s.connection()
        play = _read_play(conn, sid, cid, lock=False)
        node_id, node, _ = _current(play)
        return StoryState(
            node=node_id,
            text=node.text,
            steps=play.steps,
            choices=_options(conn, cid, play, node),
            started=play.node is not None,
        )


def available_choices(
    story: Any, character: Any, *, session: Session | None = None
) -> list[StoryOption]:
    """The options the character may take now, in the story's order; conditions it does not
    meet hide an option. A character that has not started sees the start node's."""
    return story_state(story, character, session=session).choices


def choose(
    story: Any,
    character: Any,
    option: str,
    *,
    session: Session | None = None,
    as_user: Any = None,
    durable: bool = True,
) -> StoryChoice:
    """Take ``option`` (its id, or its text) at the character's node.

    In one transaction: records a StoryChoice (``choice_order`` is the choice's place in
    the character's path through this story: 1, 2, 3, ...; ``consequences`` says the
    option, the nodes left and reached, the effects and the levels reached), moves the
    character to the option's node, and applies the option's effects (stats, items,
    affinity, experience). An option that is not there, or whose conditions the character
    does not meet, is a ValidationError naming ``option`` and saying why. A character that
    has not started the story starts it here. Without ``session``, the commit does not
    wait for the disk only when ``durable`` (the default; docs/playing.md, "Durability").
    """
    sid = _id(story, "story", Story)
    cid = _id(character, "character", Character)
    key = _option_key(option)
    values, changed = run_write(
        session,
        lambda conn, sync_off: _choose(conn, sid, cid, key, as_user, sync_off),
        durable=durable,
    )
    choice = StoryChoice(**values)
    make_transient_to_detached(choice)  # the row exists: a detached object, not a new one
    if session is not None:
        session.add(choice)
        progress = session.identity_map.get((StoryProgress, (sid, cid), None))
        if progress is not None:
            session.expire(progress)
    refresh_character(session, character, cid, changed)
    return choice


def _choose(
    conn: Connection, sid: uuid.UUID, cid: uuid.UUID, key: str, as_user: Any, sync_off: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    require_permission(conn, as_user, character_id=cid)
    sqlite_write_lock(conn)
    play = _read_play(conn, sid, cid, lock=True, sync_off=sync_off)
    node_id, node, ids = _current(play)
    picked = node.option(key)
    if picked is None:
        offered = ", ".join(repr(o.id) for o in node.options) or "none: it is an ending"
        raise ValidationError(
            f"option: {key!r} is not an option at node {node_id!r} (options: {offered})",
            field="option",
        )
    items, affinity = _holdings(conn, cid, [picked])
    reason = _why_not(picked, play, items, affinity)
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
    changed, events = _apply_effects(conn, cid, play, picked)
    now = utcnow()
    if play.node is None:
        conn.execute(
            _progress.insert().values(
                story_id=sid,
                character_id=cid,
                node=picked.to,
                steps=1,
                started_at=now,
                updated_at=now,
            )
        )
        moved = True
    else:
        moved = False
    values = {
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
    params = {**values, "sid": sid, "cid": cid, "node": picked.to, "now": now}
    if moved or conn.dialect.name != "postgresql":
        if "stats" in changed:
            conn.execute(_SET_STATS, {"cid": cid, "stats": changed["stats"]})
        if not moved:
            conn.execute(_MOVE, params)
        conn.execute(_choices.insert(), values)
    else:
        with_stats = "stats" in changed
        if with_stats:
            params["stats"] = changed["stats"]
        conn.execute(_RECORD_AND_MOVE[with_stats], params)
    return values, changed


def _apply_effects(
    s: Connection, cid: uuid.UUID, play: _Play, option: Option
) -> tuple[dict[str, Any], list[LevelUp]]:
    effects = option.effects
    changed: dict[str, Any] = {}
    if effects.stats:
        stats = dict(play.stats)
        for stat, delta in effects.stats.items():
            stats[stat] = stats.get(stat, 0) + delta
        changed["stats"] = stats  # written with the choice (one statement on PostgreSQL)
        if effects.experience:  # the gain reads the stats back: write them first
            s.execute(_SET_STATS, {"cid": cid, "stats": stats})
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
