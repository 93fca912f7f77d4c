"""Characters, their inventories, and who may act for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxeldb.errors import UnknownIdError
from voxeldb.meta import Character, InventoryItem, User, World
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._validation import CharacterInput, ItemInput

__all__ = ["add_item", "check_user_permission", "create_character"]

DEFAULT_STATS = {"strength": 10, "intelligence": 10, "dexterity": 10}
DEFAULT_POSITION = {"x": 0, "y": 64, "z": 0}


def create_character(
    user_id: Any,
    world_id: Any,
    name: str,
    char_class: str,
    *,
    session: Session | None = None,
) -> Character:
    """A new character of ``user_id`` in ``world_id``, with the seed's starting stats and position."""
    uid = parse_id(user_id, "user_id")
    wid = parse_id(world_id, "world_id")
    data = validated(CharacterInput, name=name, char_class=char_class)
    with session_scope(session, write=True) as s:
        if s.get(User, uid) is None:
            raise UnknownIdError(f"user_id: no user {uid}", field="user_id")
        if s.get(World, wid) is None:
            raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
        character = Character(
            user_id=uid,
            world_id=wid,
            name=data.name,
            character_class=data.char_class,
            stats=dict(DEFAULT_STATS),
            position=dict(DEFAULT_POSITION),
        )
        s.add(character)
    return character


def add_item(
    character_id: Any, item_name: str, quantity: int = 1, *, session: Session | None = None
) -> InventoryItem:
    """Put ``quantity`` of ``item_name`` (a material) in a character's inventory."""
    cid = parse_id(character_id, "character_id")
    data = validated(ItemInput, item_name=item_name, quantity=quantity)
    with session_scope(session, write=True) as s:
        if s.get(Character, cid) is None:
            raise UnknownIdError(f"character_id: no character {cid}", field="character_id")
        item = InventoryItem(
            character_id=cid,
            item_type="material",
            item_name=data.item_name,
            quantity=data.quantity,
        )
        s.add(item)
    return item


def check_user_permission(
    user_id: Any, character_id: Any, *, session: Session | None = None
) -> bool:
    """Whether the user owns the character (False for a character that does not exist)."""
    uid = parse_id(user_id, "user_id")
    cid = parse_id(character_id, "character_id")
    with session_scope(session) as s:
        owner = s.scalar(select(Character.user_id).where(Character.id == cid))
    return owner is not None and owner == uid
