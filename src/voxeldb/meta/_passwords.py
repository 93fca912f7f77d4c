"""Password policy and bcrypt hashing.

The policy follows NIST SP 800-63B: at least 12 characters, not one of the most common
passwords, and no composition rules. bcrypt reads at most 72 bytes, so a longer password is
refused instead of being silently truncated (two passwords sharing their first 72 bytes
would otherwise be the same password).
"""

from __future__ import annotations

import functools
from importlib.resources import files

import bcrypt

from voxeldb._settings import get_settings
from voxeldb.errors import ValidationError

__all__ = [
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "check_password_hash",
    "common_passwords",
    "hash_password",
    "validate_password",
]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 72


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased."""
    text = (files("voxeldb") / "data" / "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def validate_password(password: object, field: str = "password") -> str:
    """``password`` if it meets the policy, else a ValidationError saying which rule it breaks."""
    if not isinstance(password, str):
        raise ValidationError(f"{field} must be a string", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"{field} is too short: at least {MIN_PASSWORD_LENGTH} characters", field=field
        )
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"{field} is too long: at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)",
            field=field,
        )
    if "\x00" in password:
        raise ValidationError(f"{field} must not contain NUL characters", field=field)
    if password.lower() in common_passwords():
        raise ValidationError(f"{field} is too common: choose a less guessable one", field=field)
    return password


def hash_password(password: str, rounds: int | None = None) -> str:
    """A bcrypt hash of ``password`` (policy-checked) at the configured cost."""
    validate_password(password)
    cost = rounds if rounds is not None else get_settings().bcrypt_rounds
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=cost)).decode("ascii")


def check_password_hash(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches; a malformed or over-long candidate is simply no match."""
    if not isinstance(password, str):
        return False
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES or b"\x00" in raw:
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:
        return False
