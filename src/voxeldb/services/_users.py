"""Users, passwords and login sessions.

bcrypt never runs inside a write transaction (on SQLite one would stall every writer of the
database): a password is checked in a read step, then a short write transaction records
the result. Lookups (``login``, ``authenticate_user``, ``user_for_token``) answer None for
anything that names nobody, and every failing login costs one bcrypt at the configured
cost. docs/security.md has the reasons.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from voxeldb._settings import get_settings
from voxeldb._time import as_utc, utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import User, UserSession, get_engine, validate_password
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._validation import UserInput, is_storable_text, username_key

__all__ = [
    "authenticate_user",
    "change_password",
    "create_user",
    "login",
    "logout",
    "token_hash",
    "user_for_token",
]


log = logging.getLogger(__name__)

# last_seen_at is written at most this often: a read per request, not a write per request.
_TOUCH_INTERVAL = timedelta(minutes=1)
# How long the last_seen_at refresh may wait for a lock before it is skipped.
_TOUCH_WAIT_MS = 50


def create_user(
    username: str, email: str, password: str, *, session: Session | None = None
) -> User:
    """A new user; the username and e-mail must be unused whatever their case, the password
    must meet the policy."""
    data = validated(UserInput, username=username, email=email)
    validate_password(password)
    user = User(username=data.username, email=data.email)
    user.set_password(password)  # bcrypt before the write transaction, not inside it
    with session_scope(session, write=True) as s:
        for field, column, value in (
            ("username", User.username, data.username),
            ("email", User.email, data.email),
        ):
            if s.scalar(select(User.id).where(func.lower(column) == value.lower())) is not None:
                raise ValidationError(f"{field} {value!r} is already taken", field=field)
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
    """The user called ``username`` whatever its case; None if no user can have that name."""
    if not isinstance(username, str):
        raise ValidationError("username must be a string", field="username")
    key = username_key(username)
    if key is None:
        return None
    return s.scalar(select(User).where(func.lower(User.username) == key))


def _password_ok(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s: one bcrypt at the configured cost, whatever the case."""
    if user is None or not user.is_active:
        return User.check_no_password(password)
    return user.check_password(password)


def authenticate_user(
    username: str, password: str, *, session: Session | None = None
) -> User | None:
    """The user whose credentials these are, or None."""
    with session_scope(session) as s:
        user = _find_user(s, username)
    return user if _password_ok(user, password) else None


def change_password(
    user_id: object,
    new_password: str,
    *,
    current_password: str | None = None,
    session: Session | None = None,
) -> User:
    """Set a new password; every login session of the user is revoked.

    With ``current_password`` (what a "change my password" form must pass) a wrong current
    password is a ValidationError on ``current_password`` and nothing changes. Without it
    this is an administrator's reset: the caller has decided who may set the password
    (docs/security.md).
    """
    uid = parse_id(user_id, "user_id")
    validate_password(new_password, "new_password")
    with session_scope(session) as s:
        user = s.get(User, uid)
        if user is None:
            raise UnknownIdError(f"user_id: no user {uid}", field="user_id")
        checked_hash = user.password_hash
    if current_password is not None and not _password_ok(user, current_password):
        raise ValidationError("current_password: not the user's password", field="current_password")
    new_hash = User.password_hash_for(new_password)  # bcrypt outside the write transaction
    with session_scope(session, write=True) as s:
        user = s.get(User, uid)
        if user is None:
            raise UnknownIdError(f"user_id: no user {uid}", field="user_id")
        if current_password is not None and user.password_hash != checked_hash:
            raise ValidationError(
                "current_password: the password changed meanwhile", field="current_password"
            )
        user.set_password_hash(new_hash)
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


def _token_ok(token: object) -> bool:
    return isinstance(token, str) and 0 < len(token) <= 512 and is_storable_text(token)


def login(username: str, password: str, *, session: Session | None = None) -> str | None:
    """A new session token (256 random bits, URL-safe) for these credentials, or None."""
    settings = get_settings()
    with session_scope(session) as s:
        user = _find_user(s, username)
    # The password is checked outside any transaction of ours (in a caller's session, inside
    # the caller's): bcrypt is slow, and a write transaction would stall every writer.
    if not _password_ok(user, password):
        return None
    assert user is not None
    checked = (user.password_hash, user.auth_epoch)
    token = secrets.token_urlsafe(32)
    with session_scope(session, write=True) as s:
        fresh = s.get(User, user.id)
        if (
            fresh is None
            or not fresh.is_active
            or (fresh.password_hash, fresh.auth_epoch) != checked
        ):
            return None  # deactivated or given a new password since we checked
        now = utcnow()
        s.add(
            UserSession(
                user_id=fresh.id,
                token_hash=token_hash(token),
                auth_epoch=fresh.auth_epoch,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=settings.session_absolute_hours),
            )
        )
        fresh.last_login_at = now
    return token


def user_for_token(token: str, *, session: Session | None = None) -> User | None:
    """The user a live session token belongs to; None if unknown, expired or revoked.

    Never raises for a busy database: the ``last_seen_at`` refresh (at most once a minute)
    is skipped when it cannot have the write lock at once, and done by a later call.
    """
    if not _token_ok(token):
        return None
    settings = get_settings()
    with session_scope(session) as s:
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
        due = now - as_utc(row.last_seen_at) >= _TOUCH_INTERVAL
        if due and session is not None:
            _touch_in(session, row, now)
    if due and session is None:
        _touch(row.id, now)
    return user


def _touch_in(s: Session, row: UserSession, now: datetime) -> None:
    """Refresh ``last_seen_at`` in the caller's session, in a savepoint: a busy database
    rolls back the refresh only."""
    try:
        with s.begin_nested():
            row.last_seen_at = now
    except OperationalError as exc:
        log.debug("last_seen_at refresh skipped: %s", exc)


def _touch(session_id: uuid.UUID, now: datetime) -> None:
    """Refresh ``last_seen_at`` in a short transaction of its own, waiting at most
    ``_TOUCH_WAIT_MS`` for a lock; skipped (never raised) when the database is busy."""
    engine = get_engine()
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() if sqlite else None
            try:
                if sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={_TOUCH_WAIT_MS}")
                else:
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_TOUCH_WAIT_MS}ms'")
                conn.execute(
                    update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now)
                )
                conn.commit()
            finally:
                if conn.in_transaction():
                    conn.rollback()
                if sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(previous or 0)}")
                    conn.rollback()
    except OperationalError as exc:
        log.debug("last_seen_at refresh skipped: %s", exc)


def logout(token: str, *, session: Session | None = None) -> None:
    """Revoke the session of ``token`` (nothing happens for an unknown token)."""
    if not _token_ok(token):
        return
    with session_scope(session, write=True) as s:
        row = s.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
