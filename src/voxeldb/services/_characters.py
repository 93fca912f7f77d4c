"""Characters, their inventories, and who may act for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from voxeldb.errors import PermissionDeniedError, UnknownIdError
from voxeldb.meta import Character, InventoryItem, User, World
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._permissions import require_permission, user_id_of
from voxeldb.services._validation import CharacterInput, ItemInput

__all__ = ["add_item", "create_character"]

DEFAULT_STATS = {"strength": 10, "intelligence": 10, "dexterity": 10}
DEFAULT_POSITION = {"x": 0, "y": 64, "z": 0}


def create_character(
    user_id: Any,
    world_id: Any,
    name: str,
    char_class: str,
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> Character:
    """A new character of ``user_id`` in ``world_id``, with the seed's starting stats and position.

    With ``as_user``, that must be ``user_id`` (an active user): one makes one's own
    characters."""
    uid = parse_id(user_id, "user_id")
    wid = parse_id(world_id, "world_id")
    data = validated(CharacterInput, name=name, char_class=char_class)
    with session_scope(session, write=True) as s:
        if s.get(User, uid) is None:
            raise UnknownIdError(f"user_id: no user {uid}", field="user_id")
        if s.get(World, wid) is None:
            raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
        if as_user is not None and user_id_of(as_user) != uid:
            raise PermissionDeniedError(f"user {user_id_of(as_user)} may not act for user {uid}")
        require_permission(s, as_user)
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
    character_id: Any,
    item_name: str,
    quantity: int = 1,
    *,
    session: Session | None = None,
    as_user: Any = None,
) -> InventoryItem:
    """Put ``quantity`` of ``item_name`` (a material) in a character's inventory."""
    cid = parse_id(character_id, "character_id")
    data = validated(ItemInput, item_name=item_name, quantity=quantity)
    with session_scope(session, write=True) as s:
        if s.get(Character, cid) is None:
            raise UnknownIdError(f"character_id: no character {cid}", field="character_id")
        require_permission(s, as_user, character_id=cid)
        item = InventoryItem(
            character_id=cid,
            item_type="material",
            item_name=data.item_name,
            quantity=data.quantity,
        )
        s.add(item)
    return item
