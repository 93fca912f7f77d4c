"""Characters playing stories: start, see the options they may take, choose one.

:func:`choose` records a StoryChoice, moves the character to the option's node
(``StoryProgress``) and applies the option's effects, all in one transaction, on the game's
hot path: on PostgreSQL on a connection of its own, through psycopg (``_story_direct``: one
statement, after a read unless the character's last step left a hint);
otherwise Core statements (``_txn.run_write``). What a step checks and does is in
``_story_rules``; authoring and agents are in ``_stories``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, func, select, text, update
from sqlalchemy.orm import Session, attributes, configure_mappers, make_transient_to_detached

from voxeldb._engine import sqlite_write_lock
from voxeldb._time import utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import Character, Story, StoryChoice, StoryProgress, write_lock
from voxeldb.services._common import parse_id, session_scope
from voxeldb.services._permissions import require_permission, user_id_of
from voxeldb.services._progression import refresh_character
from voxeldb.services._story_direct import choose_direct
from voxeldb.services._story_graph import Node, parse_graph
from voxeldb.services._story_rules import (
    SET_STATS,
    STORY_RELATIONSHIP_TYPE,
    Play,
    apply_effects,
    check_play,
    choice_values,
    current,
    holdings,
    pick,
    refuse_unavailable,
    why_not,
)
from voxeldb.services._txn import direct_engine, run_alone, run_write
from voxeldb.services._validation import check_text

__all__ = [
    "STORY_RELATIONSHIP_TYPE",
    "StoryOption",
    "StoryState",
    "available_choices",
    "choose",
    "start_story",
    "story_state",
]

_chars = cast(Table, Character.__table__)
_stories = cast(Table, Story.__table__)
_progress = cast(Table, StoryProgress.__table__)
_choices = cast(Table, StoryChoice.__table__)
_CHOICES = attributes.manager_of_class(StoryChoice)
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
_LOCK_CHARACTER = (
    select(_chars.c.id)
    .where(_chars.c.id == bindparam("cid", type_=_chars.c.id.type))
    .with_for_update()
)
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


def _read_play(
    s: Connection, sid: uuid.UUID, cid: uuid.UUID, *, lock: bool, sync_off: bool = False
) -> Play:
    sync_off = sync_off and s.dialect.name == "postgresql"
    if lock and s.dialect.name == "postgresql":
        # The lock first, in a statement of its own: the play query's join then reads the
        # place as it is once the lock is had. Joined to the locking statement, it would be
        # read as it was before the wait, and two steps could start from one place.
        s.execute(_LOCK_CHARACTER, {"cid": cid})
    row = s.execute(_PLAY_QUERIES[lock, sync_off], {"sid": sid, "cid": cid}).one_or_none()
    if row is None:
        if s.scalar(select(_stories.c.id).where(_stories.c.id == sid)) is None:
            raise UnknownIdError(f"story: no story {sid}", field="story")
        raise UnknownIdError(f"character: no character {cid}", field="character")
    check_play(row.world_id, row.story_world, row.status)
    return Play(
        world_id=row.world_id,
        stats=dict(row.stats or {}),
        level=row.level,
        branching_data=row.branching_data or {},
        node=row.node,
        steps=row.steps or 0,
    )


def _options(s: Connection, cid: uuid.UUID, play: Play, node: Node) -> list[StoryOption]:
    items, affinity = holdings(s, cid, node.options)
    return [
        StoryOption(o.id, o.text, o.to)
        for o in node.options
        if why_not(o, play, items, affinity) is None
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
        node_id, node, _ = current(play)
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
    has not started the story starts it here. Without ``session``, the commit waits for
    the disk unless ``durable=False`` (docs/playing.md, "Durability").
    """
    sid = _id(story, "story", Story)
    cid = _id(character, "character", Character)
    key = _option_key(option)
    done = None
    engine = direct_engine(session)
    if engine is not None:
        uid = None if as_user is None else user_id_of(as_user)
        done = run_alone(engine, lambda direct: choose_direct(direct, sid, cid, key, uid, durable))
    if done is None:  # not on PostgreSQL's hot path, or a step it leaves to this one
        done = run_write(
            session,
            lambda conn, sync_off: _choose(conn, sid, cid, key, as_user, sync_off),
            durable=durable,
        )
    values, changed = done
    choice = _loaded(values)
    if session is not None:
        session.add(choice)
        progress = session.identity_map.get((StoryProgress, (sid, cid), None))
        if progress is not None:
            session.expire(progress)
    refresh_character(session, character, cid, changed)
    return choice


def _loaded(values: dict[str, Any]) -> StoryChoice:
    """The StoryChoice of a row just written, as if loaded from it: a detached object with
    nothing pending (a third of the cost of the constructor's attribute events and
    validators, which ``values`` passed already)."""
    if not _configured:
        _configure()
    choice: StoryChoice = _CHOICES.new_instance()
    state = attributes.instance_state(choice)
    state.dict.update(values)
    state.manager.dispatch.load(state, None)  # the load hooks: consequences a MutableDict
    make_transient_to_detached(choice)
    return choice


_configured = False


def _configure() -> None:
    # A process whose first ORM object this is: the mappers (and with them the load hooks)
    # are set up by the first query or constructor, and this is neither.
    global _configured
    configure_mappers()
    _configured = True


def _choose(
    conn: Connection, sid: uuid.UUID, cid: uuid.UUID, key: str, as_user: Any, sync_off: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    require_permission(conn, as_user, character_id=cid)
    sqlite_write_lock(conn)
    play = _read_play(conn, sid, cid, lock=True, sync_off=sync_off)
    node_id, node, ids = current(play)
    picked = pick(node_id, node, key)
    items, affinity = holdings(conn, cid, [picked])
    refuse_unavailable(picked, node_id, ids, play, items, affinity)
    changed, events = apply_effects(conn, cid, play, picked)
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
    values = choice_values(sid, cid, play, node_id, picked, events, now)
    params = {**values, "sid": sid, "cid": cid, "node": picked.to, "now": now}
    if moved or conn.dialect.name != "postgresql":
        if "stats" in changed:
            conn.execute(SET_STATS, {"cid": cid, "stats": changed["stats"]})
        if not moved:
            conn.execute(_MOVE, params)
        conn.execute(_choices.insert(), values)
    else:
        with_stats = "stats" in changed
        if with_stats:
            params["stats"] = changed["stats"]
        conn.execute(_RECORD_AND_MOVE[with_stats], params)
    return values, changed
