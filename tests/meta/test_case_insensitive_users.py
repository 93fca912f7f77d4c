"""Migration 0002: usernames and e-mails unique whatever their case (docs/security.md)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, inspect, text

from voxeldb.meta import current, downgrade, upgrade


def _add_user(engine: Engine, username: str, email: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, email, password_hash) "
                "VALUES (:id, :username, :email, '!')"
            ),
            {
                "id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                "username": username,
                "email": email,
            },
        )


def test_the_indexes_exist(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = {
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"
                    )
                )
            }
        else:
            names = {ix["name"] for ix in inspect(conn).get_indexes("users")}
    assert {"uq_users_username_lower", "uq_users_email_lower"} <= names


@pytest.mark.parametrize(
    ("first", "second", "column"),
    [
        (("alice", "a1@example.com"), ("ALICE", "a2@example.com"), "username"),
        (("bob1", "Bob@example.com"), ("bob2", "bob@example.com"), "email"),
    ],
)
def test_upgrade_refuses_case_duplicates(
    engine: Engine, first: tuple[str, str], second: tuple[str, str], column: str
) -> None:
    downgrade(engine, "0001")
    _add_user(engine, *first)
    _add_user(engine, *second)
    with pytest.raises(RuntimeError, match=f"case of their {column}"):
        upgrade(engine)
    assert current(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE username = :u"), {"u": second[0]})
    upgrade(engine)
    assert current(engine) != "0001"
