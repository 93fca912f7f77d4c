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
from voxeldb.services._agents import RECENT_IMPACTS, create_agent, run_agent_activity
from voxeldb.services._characters import add_item, create_character
from voxeldb.services._permissions import check_user_permission
from voxeldb.services._progression import (
    DEFAULT_PROGRESSION,
    LevelUp,
    experience_for_level,
    gain_experience,
    level_for_experience,
)
from voxeldb.services._relationships import (
    MAX_AFFINITY,
    MIN_AFFINITY,
    adjust_affinity,
    characters_near,
    relationship_between,
    relationships_of,
)
from voxeldb.services._settings_cache import reset_cache
from voxeldb.services._stories import create_story, evolve_story, make_choice, set_story_graph
from voxeldb.services._story_play import (
    STORY_RELATIONSHIP_TYPE,
    StoryOption,
    StoryState,
    available_choices,
    choose,
    start_story,
    story_state,
)
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
    "DEFAULT_PROGRESSION",
    "MAX_AFFINITY",
    "MIN_AFFINITY",
    "RECENT_IMPACTS",
    "STORY_RELATIONSHIP_TYPE",
    "LevelUp",
    "SessionSource",
    "StoryOption",
    "StoryState",
    "UnknownIdError",
    "WorldRef",
    "add_item",
    "adjust_affinity",
    "authenticate_user",
    "available_choices",
    "change_password",
    "characters_near",
    "check_user_permission",
    "choose",
    "create_agent",
    "create_character",
    "create_story",
    "create_user",
    "create_world",
    "evolve_story",
    "experience_for_level",
    "gain_experience",
    "get_chunk",
    "get_world_settings",
    "level_for_experience",
    "login",
    "logout",
    "make_choice",
    "relationship_between",
    "relationships_of",
    "reset_cache",
    "resolve_world",
    "run_agent_activity",
    "set_block",
    "set_story_graph",
    "start_story",
    "story_state",
    "update_world_settings",
    "user_for_token",
]
