"""The seed's example operations as validated library functions.

Each takes the seed's positional arguments and an optional keyword-only ``session=``:
without it, it runs in a session of its own, committed before it returns, and the objects
it returns stay readable afterwards. Ids may be ``uuid.UUID`` or their string form. Bad
input raises :class:`voxeldb.errors.ValidationError` naming the field; an id that names
nothing raises :class:`UnknownIdError`, which is both a ``ValidationError`` and a
:class:`voxeldb.errors.NotFoundError`.

World lookup by name or id (:func:`resolve_world`, giving a :class:`WorldRef`) is here too:
every command that takes a ``WORLD`` argument goes through it.
"""

from __future__ import annotations

from voxeldb.errors import UnknownIdError
from voxeldb.services._agents import create_agent, run_agent_activity
from voxeldb.services._characters import add_item, check_user_permission, create_character
from voxeldb.services._settings_cache import reset_cache
from voxeldb.services._stories import create_story, make_choice
from voxeldb.services._users import (
    authenticate_user,
    change_password,
    create_user,
    login,
    logout,
    user_for_token,
)
from voxeldb.services._world_lookup import SessionSource, WorldRef, resolve_world
from voxeldb.services._worlds import (
    create_world,
    get_chunk,
    get_world_settings,
    set_block,
    update_world_settings,
)

__all__ = [
    "SessionSource",
    "UnknownIdError",
    "WorldRef",
    "add_item",
    "authenticate_user",
    "change_password",
    "check_user_permission",
    "create_agent",
    "create_character",
    "create_story",
    "create_user",
    "create_world",
    "get_chunk",
    "get_world_settings",
    "login",
    "logout",
    "make_choice",
    "reset_cache",
    "resolve_world",
    "run_agent_activity",
    "set_block",
    "update_world_settings",
    "user_for_token",
]
