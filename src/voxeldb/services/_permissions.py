"""Who may act: the one rule behind ``check_user_permission`` and every ``as_user=``.

A user may act on

- a **character** they own (``characters.user_id``);
- a **world**, and the stories in it, they created (``worlds.created_by``). A world with no
  recorded creator (made by an operator, a script, the sample data) has no owner to act for
  it: only trusted code that passes no ``as_user`` changes it.

An unknown or deactivated user may act on nothing. Services that change a character, story
or world take ``as_user=`` (a :class:`~voxeldb.meta.User` or a user id); without it they
trust their caller, as the seed's functions did. With it, they raise
:class:`~voxeldb.errors.PermissionDeniedError` before changing anything.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from voxeldb.errors import PermissionDeniedError
from voxeldb.meta import Character, Story, User, World
from voxeldb.services._common import parse_id, session_scope

__all__ = ["check_user_permission", "denied", "require_permission", "user_id_of"]


def user_id_of(user: Any, field: str = "as_user") -> uuid.UUID:
    """The id of ``user``: a User, or a user id (UUID or its string form)."""
    if isinstance(user, User):
        return user.id
    return parse_id(user, field)


def _may_act(
    s: Session | Connection,
    user_id: uuid.UUID,
    *,
    character_id: uuid.UUID | None = None,
    world_id: uuid.UUID | None = None,
    story_id: uuid.UUID | None = None,
) -> bool:
    if not s.scalar(select(User.is_active).where(User.id == user_id)):
        return False
    if character_id is not None:
        owner = s.scalar(select(Character.user_id).where(Character.id == character_id))
        if owner is None or owner != user_id:
            return False
    if story_id is not None:
        story_world = s.scalar(select(Story.world_id).where(Story.id == story_id))
        if story_world is None:
            return False
        world_id = story_world if world_id is None else world_id
        if story_world != world_id:
            return False
    if world_id is not None:
        creator = s.scalar(select(World.created_by).where(World.id == world_id))
        if creator is None or creator != user_id:
            return False
    return True


def require_permission(
    s: Session | Connection,
    as_user: Any,
    *,
    character_id: uuid.UUID | None = None,
    world_id: uuid.UUID | None = None,
    story_id: uuid.UUID | None = None,
) -> None:
    """Raise PermissionDeniedError unless ``as_user`` (None: trusted caller) may act on
    every object named."""
    if as_user is None:
        return
    uid = user_id_of(as_user)
    if not _may_act(s, uid, character_id=character_id, world_id=world_id, story_id=story_id):
        raise denied(uid, character_id=character_id, world_id=world_id, story_id=story_id)


def denied(
    uid: uuid.UUID,
    *,
    character_id: uuid.UUID | None = None,
    world_id: uuid.UUID | None = None,
    story_id: uuid.UUID | None = None,
) -> PermissionDeniedError:
    """The error :func:`require_permission` raises, for the services that check the rule
    inside a statement of their own (the game's hot path)."""
    what = ", ".join(
        f"{name} {value}"
        for name, value in (
            ("character", character_id),
            ("story", story_id),
            ("world", world_id),
        )
        if value is not None
    )
    return PermissionDeniedError(f"user {uid} may not act on {what}")


def check_user_permission(
    user_id: Any,
    character_id: Any = None,
    *,
    world_id: Any = None,
    story_id: Any = None,
    session: Session | None = None,
) -> bool:
    """Whether the user may act on the character (the seed's question: do they own it), and
    on ``world_id``/``story_id`` when given (did they create the world). False for anything
    that does not exist, and for an unknown or deactivated user."""
    uid = user_id_of(user_id, "user_id")
    cid = None if character_id is None else parse_id(character_id, "character_id")
    wid = None if world_id is None else parse_id(world_id, "world_id")
    sid = None if story_id is None else parse_id(story_id, "story_id")
    with session_scope(session) as s:
        return _may_act(s, uid, character_id=cid, world_id=wid, story_id=sid)
