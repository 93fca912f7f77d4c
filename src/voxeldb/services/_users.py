"""Users, passwords and login sessions."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta

import bcrypt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voxeldb._settings import get_settings
from voxeldb._time import as_utc, utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import User, UserSession, validate_password
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._validation import UserInput

__all__ = [
    "authenticate_user",
    "change_password",
    "create_user",
    "login",
    "logout",
    "token_hash",
    "user_for_token",
]


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    """A hash to check against when the user does not exist, so that "no such user" takes
    as long as "wrong password" (no username probing by timing): so the same bcrypt cost as
    the users' own hashes."""
    return bcrypt.hashpw(b"voxeldb-dummy-password", bcrypt.gensalt(rounds=rounds))


# last_seen_at is written at most this often: a read per request, not a write per request.
_TOUCH_INTERVAL = timedelta(minutes=1)


def create_user(
    username: str, email: str, password: str, *, session: Session | None = None
) -> User:
    """A new user; the username and e-mail must be unused, the password must meet the policy."""
    data = validated(UserInput, username=username, email=email)
    validate_password(password)
    with session_scope(session, write=True) as s:
        for field, column, value in (
            ("username", User.username, data.username),
            ("email", User.email, data.email),
        ):
            if s.scalar(select(User.id).where(column == value)) is not None:
                raise ValidationError(f"{field} {value!r} is already taken", field=field)
        user = User(username=data.username, email=data.email)
        user.set_password(password)
        s.add(user)
        try:
            s.flush()
        except IntegrityError:
            # Another process took the name between our check and our insert.
            raise ValidationError(
                f"username {data.username!r} or email {data.email!r} is already taken",
                field="username",
            ) from None
    return user


def _find_user(s: Session, username: str) -> User | None:
    if not isinstance(username, str):
        raise ValidationError("username must be a string", field="username")
    return s.scalar(select(User).where(User.username == username))


def _password_ok(user: User | None, password: str) -> bool:
    if user is None or not user.is_active:
        bcrypt.checkpw(b"voxeldb-dummy-password", _dummy_hash(get_settings().bcrypt_rounds))
        return False
    return user.check_password(password)


def authenticate_user(
    username: str, password: str, *, session: Session | None = None
) -> User | None:
    """The user whose credentials these are, or None."""
    with session_scope(session) as s:
        user = _find_user(s, username)
        return user if _password_ok(user, password) else None


def change_password(user_id: object, new_password: str, *, session: Session | None = None) -> User:
    """Set a new password; every login session of the user is revoked."""
    uid = parse_id(user_id, "user_id")
    validate_password(new_password, "new_password")
    with session_scope(session, write=True) as s:
        user = s.get(User, uid)
        if user is None:
            raise UnknownIdError(f"user_id: no user {uid}", field="user_id")
        user.set_password(new_password)
        _revoke_all(s, user)
    return user


def _revoke_all(s: Session, user: User) -> None:
    now = utcnow()
    for row in s.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    ):
        row.revoked_at = now


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are random, so no salt or stretching)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def login(username: str, password: str, *, session: Session | None = None) -> str | None:
    """A new session token (256 random bits, URL-safe) for these credentials, or None."""
    settings = get_settings()
    with session_scope(session, write=True) as s:
        user = _find_user(s, username)
        if not _password_ok(user, password):
            return None
        assert user is not None
        token = secrets.token_urlsafe(32)
        now = utcnow()
        s.add(
            UserSession(
                user_id=user.id,
                token_hash=token_hash(token),
                auth_epoch=user.auth_epoch,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=settings.session_absolute_hours),
            )
        )
        user.last_login_at = now
    return token


def user_for_token(token: str, *, session: Session | None = None) -> User | None:
    """The user a live session token belongs to; None if unknown, expired or revoked."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    settings = get_settings()
    with session_scope(session, write=False) as s:
        row = s.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        user = s.get(User, row.user_id)
        if (
            user is None
            or not user.is_active
            or row.auth_epoch != user.auth_epoch
            or now >= as_utc(row.expires_at)
            or now - as_utc(row.last_seen_at) >= timedelta(minutes=settings.session_idle_minutes)
        ):
            return None
        if now - as_utc(row.last_seen_at) >= _TOUCH_INTERVAL:
            row.last_seen_at = now
        return user


def logout(token: str, *, session: Session | None = None) -> None:
    """Revoke the session of ``token`` (nothing happens for an unknown token)."""
    if not isinstance(token, str) or not token:
        return
    with session_scope(session, write=True) as s:
        row = s.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
