"""Stories and the choices characters make in them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import Character, Story, StoryChoice, World
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._validation import ChoiceInput, StoryInput

__all__ = ["create_story", "make_choice"]


def create_story(
    world_id: Any, title: str, story_type: str, *, session: Session | None = None
) -> Story:
    """A new story arc in ``world_id``, its main narrative thread begun."""
    wid = parse_id(world_id, "world_id")
    data = validated(StoryInput, title=title, story_type=story_type)
    with session_scope(session, write=True) as s:
        if s.get(World, wid) is None:
            raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
        story = Story(
            world_id=wid,
            title=data.title,
            story_type=data.story_type,
            narrative_threads={"main": "The adventure begins..."},
        )
        s.add(story)
    return story


def make_choice(
    story_id: Any, character_id: Any, choice_text: str, *, session: Session | None = None
) -> StoryChoice:
    """Record a character's choice in a story; choices are numbered 1, 2, 3, ... per story."""
    sid = parse_id(story_id, "story_id")
    cid = parse_id(character_id, "character_id")
    data = validated(ChoiceInput, choice_text=choice_text)
    with session_scope(session, write=True) as s:
        story = s.get(Story, sid)
        if story is None:
            raise UnknownIdError(f"story_id: no story {sid}", field="story_id")
        character = s.get(Character, cid)
        if character is None:
            raise UnknownIdError(f"character_id: no character {cid}", field="character_id")
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
