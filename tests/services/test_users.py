"""Users, passwords and login sessions through voxeldb.services, on both backends."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from voxeldb import services
from voxeldb._time import utcnow
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.meta import User, UserSession

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def _db(session_local: sessionmaker[Session]) -> None:
    """Every test here runs against its own migrated database."""


def test_create_user_returns_a_readable_user() -> None:
    user = services.create_user("wizard_adventurer", "Wizard@Example.COM", PW)
    assert user.username == "wizard_adventurer"
    assert user.email == "Wizard@example.com"  # the domain is case-insensitive
    assert user.id is not None and user.created_at is not None
    assert user.check_password(PW)


@pytest.mark.parametrize(
    ("username", "email", "password", "field"),
    [
        ("ab", "a@example.com", PW, "username"),
        ("x" * 51, "a@example.com", PW, "username"),
        ("bad name", "a@example.com", PW, "username"),
        ("gooduser", "not-an-email", PW, "email"),
        ("gooduser", "a@b", PW, "email"),
        ("gooduser", "a@example.com", "short", "password"),
        ("gooduser", "a@example.com", "password1234", "password"),
        ("gooduser", "a@example.com", "ü" * 40, "password"),
        (123, "a@example.com", PW, "username"),
    ],
)
def test_create_user_validation(username: object, email: str, password: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        services.create_user(username, email, password)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_username_and_email_are_unique() -> None:
    services.create_user("alice", "alice@example.com", PW)
    with pytest.raises(ValidationError, match="username") as info:
        services.create_user("alice", "other@example.com", PW)
    assert info.value.field == "username"
    with pytest.raises(ValidationError, match="email") as info:
        services.create_user("alice2", "alice@example.com", PW)
    assert info.value.field == "email"


def test_authenticate_user() -> None:
    services.create_user("bob_the_builder", "bob@example.com", PW)
    user = services.authenticate_user("bob_the_builder", PW)
    assert user is not None and user.username == "bob_the_builder"
    assert services.authenticate_user("bob_the_builder", PW + "!") is None
    assert services.authenticate_user("nobody", PW) is None


def test_given_session_is_not_committed(session_local: sessionmaker[Session]) -> None:
    with session_local() as s:
        services.create_user("carol", "carol@example.com", PW, session=s)
        assert s.scalar(select(User.username)) == "carol"
        s.rollback()
    with session_local() as s:
        assert s.scalar(select(User)) is None


def test_login_token_and_logout(session_local: sessionmaker[Session]) -> None:
    services.create_user("dave", "dave@example.com", PW)
    assert services.login("dave", "wrong password!") is None
    token = services.login("dave", PW)
    assert token is not None
    assert len(token) >= 22  # ≥ 128 bits in URL-safe base64
    assert services.login("dave", PW) != token
    user = services.user_for_token(token)
    assert user is not None and user.username == "dave"
    with session_local() as s:
        stored = s.scalars(select(UserSession.token_hash)).all()
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in stored
    services.logout(token)
    assert services.user_for_token(token) is None
    assert services.user_for_token("made-up-token") is None
    services.logout("made-up-token")  # no error


def test_password_change_revokes_sessions() -> None:
    user = services.create_user("erin", "erin@example.com", PW)
    token = services.login("erin", PW)
    assert token is not None and services.user_for_token(token) is not None
    services.change_password(str(user.id), "another fine passphrase")
    assert services.user_for_token(token) is None
    assert services.login("erin", PW) is None
    new = services.login("erin", "another fine passphrase")
    assert new is not None and services.user_for_token(new) is not None
    with pytest.raises(NotFoundError):
        services.change_password("00000000-0000-0000-0000-000000000000", "another fine one!")


def test_idle_and_absolute_expiry(
    session_local: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXELDB_SESSION_IDLE_MINUTES", "5")
    services.create_user("frank", "frank@example.com", PW)
    idle, absolute, fresh = (services.login("frank", PW) for _ in range(3))
    assert idle and absolute and fresh
    now = utcnow()
    with session_local() as s:
        s.execute(
            update(UserSession)
            .where(UserSession.token_hash == hashlib.sha256(idle.encode()).hexdigest())
            .values(last_seen_at=now - timedelta(minutes=6))
        )
        s.execute(
            update(UserSession)
            .where(UserSession.token_hash == hashlib.sha256(absolute.encode()).hexdigest())
            .values(expires_at=now - timedelta(seconds=1))
        )
        s.commit()
    assert services.user_for_token(idle) is None
    assert services.user_for_token(absolute) is None
    assert services.user_for_token(fresh) is not None


def test_unknown_user_costs_as_much_bcrypt_as_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No username probing by timing: the stand-in hash has the users' own bcrypt cost."""
    import bcrypt

    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "6")
    user = services.create_user("carol_timing", "carol@example.com", PW)
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def recording_checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording_checkpw)
    assert services.authenticate_user("carol_timing", PW + "!") is None
    assert services.authenticate_user("nobody_at_all", PW) is None
    assert services.login("nobody_at_all", PW) is None
    assert user.password_hash.startswith("$2b$06$")
    assert [h[:7] for h in checked] == [b"$2b$06$"] * 3
