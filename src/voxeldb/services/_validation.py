"""The pydantic models that check every service's input."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from voxeldb.chunks import DEFAULT_HEIGHT, DEFAULT_MIN_Y, MAX_HEIGHT

__all__ = [
    "AgentActivityInput",
    "CharacterInput",
    "ChoiceInput",
    "ItemInput",
    "StoryInput",
    "UserInput",
    "WorldInput",
    "WorldSettings",
    "check_json_object",
]

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a dict that JSON can store (string keys, finite numbers)."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-able: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, str_strip_whitespace=True, extra="forbid")


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
