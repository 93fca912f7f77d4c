"""The pydantic models that check every service's input, and the checks they share.

One layer answers hostile input the same way on both backends (docs/security.md): text with
NUL characters (PostgreSQL refuses them) or lone surrogates (not encodable as UTF-8), and
JSON nested deeper than :data:`MAX_JSON_DEPTH`, larger than :data:`MAX_JSON_BYTES`, or
holding an integer outside 64 bits or a non-finite float, are ValidationErrors naming the
field, before any SQL runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from voxeldb.chunks import DEFAULT_HEIGHT, DEFAULT_MIN_Y, MAX_HEIGHT
from voxeldb.meta import (
    EMAIL_PATTERN,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    USERNAME_PATTERN,
    check_json_object,
    check_text,
)

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "AgentActivityInput",
    "CharacterInput",
    "ChoiceInput",
    "ItemInput",
    "StoryInput",
    "UserInput",
    "WorldInput",
    "WorldSettings",
    "check_json_object",
    "check_text",
    "is_storable_text",
    "username_key",
]

# The rules themselves live in voxeldb.meta, which the models check with too (@validates).
_EMAIL = EMAIL_PATTERN
_USERNAME = USERNAME_PATTERN


def is_storable_text(value: object) -> bool:
    """Whether ``value`` is a str that :func:`check_text` accepts."""
    if not isinstance(value, str):
        return False
    try:
        check_text(value, "text")
    except ValueError:
        return False
    return True


def username_key(username: str) -> str | None:
    """What a username is looked up by (lower-cased: names are one whatever their case),
    or None when ``username`` cannot be anybody's name."""
    name = username.strip()
    if not 3 <= len(name) <= 50 or not _USERNAME.fullmatch(name):
        return None
    return name.lower()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, str_strip_whitespace=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable_text(cls, v: Any) -> Any:
        if isinstance(v, str):
            check_text(v, "the text")
        return v


class UserInput(_Strict):
    username: str = Field(min_length=3, max_length=50)
    email: str = Field(min_length=3, max_length=254)

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not _USERNAME.match(v):
            raise ValueError("only letters, digits, '_', '.' and '-' are allowed")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError("not a valid e-mail address")
        local, _, domain = v.rpartition("@")
        # The domain part is case-insensitive: store it lower-cased so uniqueness holds.
        return f"{local}@{domain.lower()}"


class WorldSettings(BaseModel):
    """A world's settings: ``height`` and ``min_y`` checked, any other JSON kept as given."""

    model_config = ConfigDict(extra="allow", strict=True)

    height: StrictInt = Field(default=DEFAULT_HEIGHT, gt=0, le=MAX_HEIGHT, multiple_of=16)
    min_y: StrictInt = Field(default=DEFAULT_MIN_Y, ge=-(2**30), le=2**30)


class WorldInput(_Strict):
    name: str = Field(min_length=1, max_length=100)
    settings: dict[str, Any]

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_json_object(v, "settings")


class CharacterInput(_Strict):
    name: str = Field(min_length=1, max_length=100)
    char_class: str = Field(min_length=1, max_length=50)


class ItemInput(_Strict):
    item_name: str = Field(min_length=1, max_length=100)
    quantity: StrictInt = Field(ge=1, le=1_000_000)


class StoryInput(_Strict):
    title: str = Field(min_length=1, max_length=200)
    story_type: str = Field(min_length=1, max_length=50)


class ChoiceInput(_Strict):
    choice_text: str = Field(min_length=1, max_length=10_000)


class AgentActivityInput(_Strict):
    agent_name: str = Field(min_length=1, max_length=100)
    activity_type: str = Field(min_length=1, max_length=50)
    data: dict[str, Any]

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_json_object(v, "data")
