"""Stories: their graphs, characters playing them, and agents evolving them.

A story's ``branching_data`` is a graph of nodes and options (``_story_graph``; the shape is
in docs/playing.md). A character starts a story at its start node (:func:`start_story`),
sees the options whose conditions it meets (:func:`available_choices`), and takes one
(:func:`choose`): that records a StoryChoice, moves the character to the option's node
(``StoryProgress``) and applies the option's effects, all in one transaction.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    Table,
    func,
    select,
)
from sqlalchemy.orm import Session

from voxeldb._time import utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import (
    Character,
    CharacterRelationship,
    InventoryItem,
    Story,
    StoryChoice,
    StoryProgress,
    World,
    WorldEvolutionLog,
)
from voxeldb.services._agents import agent_named, check_impact, lock_world, record_evolution
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._permissions import require_permission
from voxeldb.services._story_graph import parse_graph
from voxeldb.services._story_play import _id
from voxeldb.services._validation import (
    AgentActivityInput,
    ChoiceInput,
    StoryInput,
    check_json_object,
)

__all__ = [
    "create_story",
    "evolve_story",
    "make_choice",
    "set_story_graph",
]

_chars = cast(Table, Character.__table__)
_stories = cast(Table, Story.__table__)
_progress = cast(Table, StoryProgress.__table__)
_items = cast(Table, InventoryItem.__table__)
_rels = cast(Table, CharacterRelationship.__table__)
_choices = cast(Table, StoryChoice.__table__)


def create_story(
    world_id: Any,
    title: str,
    story_type: str,
    *,
    branching_data: dict[str, Any] | None = None,
    session: Session | None = None,
    as_user: Any = None,
) -> Story:
    """A new story arc in ``world_id``, its main narrative thread begun; ``branching_data``
    (optional) is its graph, validated."""
    wid = parse_id(world_id, "world_id")
    data = validated(StoryInput, title=title, story_type=story_type)
    graph = None
    if branching_data is not None:
        parse_graph(branching_data)
        graph = branching_data
    with session_scope(session, write=True) as s:
        if s.get(World, wid) is None:
            raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
        require_permission(s, as_user, world_id=wid)
        story = Story(
            world_id=wid,
            title=data.title,
            story_type=data.story_type,
            narrative_threads={"main": "The adventure begins..."},
            branching_data=graph if graph is not None else {},
        )
        s.add(story)
    return story


def set_story_graph(
    story: Any,
    branching_data: dict[str, Any],
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> Story:
    """Replace a story's graph (validated); its ``version`` goes up by one.

    Characters standing on a node the new graph lacks get a ValidationError from
    :func:`choose` until they start again (``start_story(..., restart=True)``).
    """
    sid = _id(story, "story", Story)
    parse_graph(branching_data)
    with session_scope(session, write=True) as s:
        obj = s.get(Story, sid, with_for_update=True, populate_existing=True)
        if obj is None:
            raise UnknownIdError(f"story: no story {sid}", field="story")
        require_permission(s, as_user, story_id=sid)
        obj.branching_data = branching_data
        obj.version = (obj.version or 0) + 1
    return obj


def evolve_story(
    story: Any,
    agent_name: str,
    threads: dict[str, Any],
    *,
    impact: float = 0.5,
    session: Session | None = None,
    as_user: Any = None,
) -> WorldEvolutionLog:
    """An agent changes a story's narrative threads; journaled in the world evolution log.

    ``threads`` maps thread names to their new text (None removes a thread). The story's
    ``version`` goes up, ``ai_evolution`` records who evolved it last and how often, and the
    world counts a ``"story_evolution"`` activity (``World.evolution_state``). Returns the
    evolution log entry; its ``changes_made`` has the story id and the threads before and
    after.
    """
    sid = _id(story, "story", Story)
    try:
        check_json_object(threads, "threads")
    except ValueError as exc:
        raise ValidationError(str(exc), field="threads") from None
    for name, value in threads.items():
        if value is not None and not isinstance(value, str):
            raise ValidationError(
                f"threads[{name!r}] must be text or None, got {type(value).__name__}",
                field="threads",
            )
    if not threads:
        raise ValidationError("threads: nothing to change", field="threads")
    name = validated(
        AgentActivityInput, agent_name=agent_name, activity_type="story_evolution", data={}
    ).agent_name
    score = check_impact(impact)
    with session_scope(session, write=True) as s:
        agent = agent_named(s, name)
        obj = s.get(Story, sid)
        if obj is None:
            raise UnknownIdError(f"story: no story {sid}", field="story")
        require_permission(s, as_user, story_id=sid)
        world = lock_world(s, obj.world_id)  # the world first, then the story: one lock order
        obj = s.get(Story, sid, with_for_update=True, populate_existing=True)
        assert obj is not None
        before = dict(obj.narrative_threads or {})
        after = dict(before)
        for thread, value in threads.items():
            if value is None:
                after.pop(thread, None)
            else:
                after[thread] = value
        obj.narrative_threads = after
        obj.version = (obj.version or 0) + 1
        evolution = dict(obj.ai_evolution or {})
        evolution.update(
            last_agent=agent.agent_name,
            last_evolved_at=utcnow().isoformat().replace("+00:00", "Z"),
            evolutions=int(evolution.get("evolutions", 0)) + 1,
        )
        obj.ai_evolution = evolution
        changed = {k: before.get(k) for k in threads}
        _activity, log = record_evolution(
            s,
            agent,
            world,
            "story_evolution",
            {
                "story_id": str(sid),
                "before": changed,
                "after": {k: after.get(k) for k in threads},
            },
            score,
        )
    return log


# --- playing -------------------------------------------------------------------------------


def make_choice(
    story_id: Any,
    character_id: Any,
    choice_text: str,
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> StoryChoice:
    """Record a free-text choice (the seed's); choices are numbered 1, 2, 3, ... per story.

    It does not move the character in the story's graph: :func:`choose` does.
    """
    sid = parse_id(story_id, "story_id")
    cid = parse_id(character_id, "character_id")
    data = validated(ChoiceInput, choice_text=choice_text)
    with session_scope(session, write=True) as s:
        story = s.get(Story, sid, with_for_update=True)
        if story is None:
            raise UnknownIdError(f"story_id: no story {sid}", field="story_id")
        character = s.get(Character, cid)
        if character is None:
            raise UnknownIdError(f"character_id: no character {cid}", field="character_id")
        require_permission(s, as_user, character_id=cid)
        if character.world_id != story.world_id:
            raise ValidationError(
                "character_id: the character is not in the story's world", field="character_id"
            )
        last = s.scalar(
            select(func.coalesce(func.max(StoryChoice.choice_order), 0)).where(
                StoryChoice.story_id == sid
            )
        )
        choice = StoryChoice(
            story_id=sid,
            character_id=cid,
            choice_text=data.choice_text,
            choice_order=int(last or 0) + 1,
        )
        s.add(choice)
    return choice
