"""The input rules the ORM models and the services share (one definition of each).

``voxeldb.services`` checks its arguments with these (``services/_validation.py``) and the
models check the same things on assignment (``@validates``), so ``User(email="junk")`` is
refused the way ``services.create_user(..., "junk", ...)`` is. Every rule raises
``ValueError`` with a message that starts with what was wrong; the models raise it as a
:class:`voxeldb.errors.ValidationError` naming the attribute.
"""

from __future__ import annotations

import math
import re
from typing import Any

from voxeldb.errors import ValidationError

__all__ = [
    "EMAIL_PATTERN",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "USERNAME_PATTERN",
    "check_email",
    "check_json_object",
    "check_number_map",
    "check_password_hash_shape",
    "check_position",
    "check_text",
    "model_rule",
]

MAX_JSON_DEPTH = 32
"""Containers (dicts, lists) nested at most this deep in stored JSON."""
MAX_JSON_BYTES = 256 * 1024
"""Service JSON (world settings, agent configuration, activity data) is at most this large."""
_INT64 = range(-(2**63), 2**63)

EMAIL_PATTERN = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_text(value: str, what: str) -> str:
    """``value`` if both backends can store it: no NUL characters, no lone surrogates."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (it has a lone surrogate)") from None
    return value


def check_email(value: object, what: str = "email") -> str:
    """``value`` if it is an e-mail address (the shape ``services.create_user`` accepts)."""
    if not isinstance(value, str) or not 3 <= len(value) <= 254 or not EMAIL_PATTERN.match(value):
        raise ValueError(f"{what} is not a valid e-mail address: {value!r}")
    return value


def check_password_hash_shape(value: object, what: str = "password_hash") -> str:
    """``value`` if it can be a stored password: a bcrypt hash (60 characters, the column's
    width) or a locked account's marker (starts with ``!``). Never a password itself."""
    if isinstance(value, str) and (len(value) == 60 or value.startswith("!")):
        return value
    raise ValueError(
        f"{what} must be a bcrypt hash (use set_password) or a locked account's '!' marker"
    )


def check_json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a dict that JSON can store the same way on both backends.

    String keys; text as :func:`check_text` wants it; integers within 64 bits; finite
    floats; at most :data:`MAX_JSON_DEPTH` levels and about :data:`MAX_JSON_BYTES` bytes.
    Walked without recursion, so no nesting gives a RecursionError.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    budget = MAX_JSON_BYTES
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested too deeply: at most {MAX_JSON_DEPTH} levels")
            budget -= 2 + len(item)
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValueError(
                            f"{what} has a key that is not a string: {type(key).__name__}"
                        )
                    budget -= len(check_text(key, f"{what} key").encode("utf-8")) + 3
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            budget -= len(check_text(item, what).encode("utf-8")) + 2
        elif item is None or isinstance(item, bool):
            budget -= 5
        elif isinstance(item, int):
            if item not in _INT64:
                raise ValueError(f"{what} has an integer outside the signed 64-bit range")
            budget -= 20
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{what} has a number JSON cannot hold: {item}")
            budget -= 24
        else:
            raise ValueError(f"{what} is not JSON-able: it holds a {type(item).__name__}")
        if budget < 0:
            raise ValueError(f"{what} is too large: at most {MAX_JSON_BYTES} bytes as JSON")
    return value


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (not isinstance(value, int) or value in _INT64)
    )


def check_number_map(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a dict of names to finite numbers (a character's stats)."""
    check_json_object(value, what)
    for key, number in value.items():
        if not _is_number(number):
            raise ValueError(f"{what}[{key!r}] must be a number, got {number!r}")
    return value  # type: ignore[no-any-return]


def check_position(value: Any, what: str = "position") -> dict[str, Any]:
    """``value`` if it is a JSON object whose ``x``, ``y``, ``z`` (those present) are numbers."""
    check_json_object(value, what)
    for key in ("x", "y", "z"):
        if key in value and not _is_number(value[key]):
            raise ValueError(f"{what}[{key!r}] must be a number, got {value[key]!r}")
    return value  # type: ignore[no-any-return]


def model_rule(what: str, rule: Any, value: Any) -> Any:
    """``rule(value, what)`` with its ValueError raised as a ValidationError naming ``what``."""
    try:
        return rule(value, what)
    except ValidationError:
        raise
    except ValueError as exc:
        raise ValidationError(str(exc), field=what) from None
