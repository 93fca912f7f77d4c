"""Password policy and bcrypt hashing.

The policy follows NIST SP 800-63B: at least 12 characters, not one of the most common
passwords, and no composition rules. bcrypt reads at most 72 bytes, so a longer password is
refused instead of being silently truncated (two passwords sharing their first 72 bytes
would otherwise be the same password). A password must show something: one made only of
spaces or invisible characters is refused.

Checking costs the same whatever the outcome (docs/security.md): every check, including one
against a malformed candidate, an unusable or cheaper stored hash, or no user at all, spends
one bcrypt at the configured cost, so timing tells nobody which users exist.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib.resources import files

import bcrypt

from voxeldb._settings import get_settings
from voxeldb.errors import ValidationError

__all__ = [
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "check_no_password",
    "check_password_hash",
    "common_passwords",
    "hash_password",
    "is_blank",
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


# Characters that show nothing though Unicode does not class them as spaces or formats.
_BLANK_LOOKING = frozenset("\u115f\u1160\u2800\u3164\uffa0")
# Unicode categories that draw nothing on their own: separators, controls, formats,
# surrogates, unassigned code points, combining marks.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Cn", "Mn", "Me"})


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only spaces, controls, invisible or combining characters."""
    return all(
        ch in _BLANK_LOOKING or ch.isspace() or unicodedata.category(ch) in _INVISIBLE_CATEGORIES
        for ch in text
    )


def validate_password(password: object, field: str = "password") -> str:
    """``password`` if it meets the policy, else a ValidationError saying which rule it breaks."""
    if not isinstance(password, str):
        raise ValidationError(f"{field} must be a string", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"{field} is too short: at least {MIN_PASSWORD_LENGTH} characters", field=field
        )
    raw = _candidate_bytes(password)
    if raw is None:
        raise ValidationError(
            f"{field} is not valid text: it has NUL characters or lone surrogates", field=field
        )
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"{field} is too long: at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)",
            field=field,
        )
    if is_blank(password):
        raise ValidationError(
            f"{field} shows nothing: only spaces or invisible characters", field=field
        )
    if password.lower() in common_passwords():
        raise ValidationError(f"{field} is too common: choose a less guessable one", field=field)
    return password


def hash_password(password: str, rounds: int | None = None) -> str:
    """A bcrypt hash of ``password`` (policy-checked) at the configured cost."""
    validate_password(password)
    cost = rounds if rounds is not None else get_settings().bcrypt_rounds
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=cost)).decode("ascii")


def _candidate_bytes(password: object) -> bytes | None:
    """``password`` in UTF-8, or None if it cannot be a password (no str, NUL, lone surrogate)."""
    if not isinstance(password, str):
        return None
    try:
        raw = password.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return None if b"\x00" in raw else raw


def _bcrypt_cost(password_hash: object) -> int | None:
    """The cost of a bcrypt hash (``$2b$12$`` + 53 characters), or None for anything else."""
    if (
        not isinstance(password_hash, str)
        or len(password_hash) != 60
        or password_hash[:4] not in ("$2a$", "$2b$", "$2y$")
        or password_hash[6] != "$"
        or not password_hash[4:6].isdigit()
    ):
        return None
    return int(password_hash[4:6])


@functools.cache
def _stand_in_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"voxeldb stand-in password", bcrypt.gensalt(rounds=rounds))


def _spend_one_check(rounds: int) -> None:
    """One bcrypt check at cost ``rounds`` whose answer is thrown away."""
    bcrypt.checkpw(b"voxeldb stand-in candidate", _stand_in_hash(rounds))


def check_no_password(password: object) -> bool:
    """The answer for a user that does not exist (or may not log in): False, in the time a
    wrong password takes (one bcrypt at the configured cost)."""
    _spend_one_check(get_settings().bcrypt_rounds)
    return False


def check_password_hash(password: object, password_hash: object) -> bool:
    """Whether ``password`` matches ``password_hash``; anything malformed is simply no match.

    Costs at least one bcrypt at the configured cost whatever the inputs: a candidate that
    cannot be a password (over 72 bytes, NUL, lone surrogate, no str), a stored value that
    is no bcrypt hash (a locked account's marker) and a hash made at a lower cost (a
    placeholder, or a hash from before the cost was raised) all take as long as a wrong
    password does.
    """
    cost = get_settings().bcrypt_rounds
    raw = _candidate_bytes(password)
    stored = _bcrypt_cost(password_hash)
    if raw is None or stored is None or len(raw) > MAX_PASSWORD_BYTES:
        return check_no_password(password)
    assert isinstance(password_hash, str)
    try:
        ok = bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:
        return check_no_password(password)
    if stored < cost:
        _spend_one_check(cost)
    return ok
