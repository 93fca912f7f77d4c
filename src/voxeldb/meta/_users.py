"""Users and their login sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.orm import (
    DynamicMapped,
    Mapped,
    mapped_column,
    relationship,
    validates,
)

from voxeldb._time import utcnow
from voxeldb.meta._base import EMPTY_JSON, Base, TimestampMixin, uuid_pk
from voxeldb.meta._passwords import check_no_password, check_password_hash, hash_password
from voxeldb.meta._rules import (
    USERNAME_PATTERN,
    check_email,
    check_password_hash_shape,
    check_text,
    model_rule,
)

if TYPE_CHECKING:
    from voxeldb.meta._characters import Character

__all__ = [
    "User",
    "UserSession",
]


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = uuid_pk()
    username: Mapped[str] = mapped_column(String(50), unique=True, index=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(60))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=EMPTY_JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    auth_epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """Bumped by every password change; a login session of an older epoch is revoked."""

    characters: DynamicMapped[Character] = relationship(
        back_populates="user", lazy="dynamic", passive_deletes=True
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("username")
    def _check_username(self, key: str, value: Any) -> str:
        # The services also want 3 characters at least (username_key); the model refuses
        # only what no user could be named.
        def rule(v: Any, what: str) -> str:
            if not isinstance(v, str) or not 1 <= len(v) <= 50 or not USERNAME_PATTERN.match(v):
                raise ValueError(f"{what} must be 1 to 50 letters, digits, '_', '.' or '-': {v!r}")
            return check_text(v, what)

        return model_rule(key, rule, value)  # type: ignore[no-any-return]

    @validates("email")
    def _check_email(self, key: str, value: Any) -> str:
        return model_rule(key, check_email, value)  # type: ignore[no-any-return]

    @validates("password_hash")
    def _check_password_hash(self, key: str, value: Any) -> str:
        return model_rule(key, check_password_hash_shape, value)  # type: ignore[no-any-return]

    def set_password(self, password: str) -> None:
        """Hash ``password`` (bcrypt, policy-checked); revokes every login session of the user."""
        self.set_password_hash(hash_password(password))

    @staticmethod
    def password_hash_for(password: str) -> str:
        """A bcrypt hash of ``password`` (policy-checked) at the configured cost: made before
        a write transaction begins, since bcrypt is slow, then given to set_password_hash."""
        return hash_password(password)

    def set_password_hash(self, password_hash: str) -> None:
        """Store a hash from ``password_hash_for``; revokes every login session of the user."""
        self.password_hash = password_hash
        self.password_changed_at = utcnow()
        self.auth_epoch = (self.auth_epoch or 0) + 1

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is the user's; one bcrypt at the configured cost at least,
        whatever the stored hash (a locked account's placeholder too) or the candidate."""
        return check_password_hash(password, self.password_hash)

    @staticmethod
    def check_no_password(password: object) -> bool:
        """The answer when there is no user to check (unknown or inactive): False, in the
        time a wrong password takes."""
        return check_no_password(password)

    def __repr__(self) -> str:
        return f"User(id={self.id!s}, username={self.username!r})"


# Usernames and e-mails are unique whatever their case ("alice" and "ALICE" are one user):
# the services look users up by lower(username). Migration 0002; docs/security.md.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class UserSession(Base):
    """A logged-in user's session: only the SHA-256 of its token is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    auth_epoch: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="sessions")

    __table_args__ = (Index(None, "user_id", "expires_at"),)
