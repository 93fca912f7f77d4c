"""Issue 12 hardening of users, passwords and sessions, on both backends (docs/security.md).

Login timing (item 3), no bcrypt inside a write transaction (5), ``user_for_token`` under a
held write lock (6), hostile input answered by ValidationError or None (12), and the
decisions: case-insensitive usernames and e-mails, blank passwords, ``change_password``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import bcrypt
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from voxeldb import services
from voxeldb.errors import ValidationError
from voxeldb.meta import User, UserSession

PW = "correct horse battery"
COST = 6  # the configured cost in the counting tests: distinct from the 4 of placeholders


@pytest.fixture(autouse=True)
def _db(session_local: sessionmaker[Session]) -> None:
    """Every test here runs against its own migrated database."""


class _Checks:
    """Every ``bcrypt.checkpw`` call (the cost of the hash it checked against), and when."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.costs: list[int] = []
        self.started = threading.Event()
        self.finished = threading.Event()
        self.seconds: list[float] = []
        real = bcrypt.checkpw

        def checkpw(password: bytes, hashed: bytes) -> bool:
            self.costs.append(int(hashed[4:6]))
            self.started.set()
            t0 = time.perf_counter()
            try:
                return real(password, hashed)
            finally:
                self.seconds.append(time.perf_counter() - t0)
                self.finished.set()

        monkeypatch.setattr(bcrypt, "checkpw", checkpw)

    def at(self, cost: int) -> int:
        return sum(1 for c in self.costs if c == cost)


def _user_with_hash(session_local: sessionmaker[Session], name: str, password_hash: str) -> None:
    with session_local() as s:
        s.add(User(username=name, email=f"{name}@example.com", password_hash=password_hash))
        s.commit()


# --- item 3: every failing path costs one bcrypt at the configured cost -----------------


@pytest.fixture
def timing_users(
    session_local: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", str(COST))
    services.create_user("real_user", "real@example.com", PW)
    # A user restored locked from a snapshot: a bcrypt hash of an unknown secret, cost 4.
    _user_with_hash(
        session_local,
        "locked_user",
        bcrypt.hashpw(b"nobody knows this", bcrypt.gensalt(rounds=4)).decode(),
    )
    # Hashes that are no bcrypt hash at all (a marker, a test fixture's filler).
    _user_with_hash(session_local, "marker_user", "!")
    _user_with_hash(session_local, "filler_user", "x" * 60)
    inactive = services.create_user("inactive_user", "inactive@example.com", PW)
    with session_local() as s:
        s.execute(update(User).where(User.id == inactive.id).values(is_active=False))
        s.commit()
    yield


FAILING_LOGINS = [
    ("real_user", PW + "!"),  # wrong password: the reference
    ("no_such_user", PW),  # unknown user
    ("real_user", "p" * 73),  # over bcrypt's 72 bytes
    ("no_such_user", "p" * 73),
    ("real_user", PW + "\x00"),  # NUL
    ("real_user", PW + "\ud800"),  # lone surrogate
    ("real_user", ""),  # empty
    ("locked_user", PW),  # placeholder hash at cost 4
    ("marker_user", PW),  # unusable hash
    ("filler_user", PW),
    ("inactive_user", PW),
    ("real\x00user", PW),  # hostile usernames
    ("real\ud800user", PW),
    ("r" * 10_000, PW),
]


@pytest.mark.usefixtures("timing_users")
@pytest.mark.parametrize("call", ["login", "authenticate_user"])
@pytest.mark.parametrize(("username", "password"), FAILING_LOGINS)
def test_every_failing_login_costs_one_bcrypt_at_the_configured_cost(
    call: str, username: str, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _Checks(monkeypatch)
    assert getattr(services, call)(username, password) is None
    assert checks.at(COST) == 1, checks.costs


@pytest.mark.usefixtures("timing_users")
def test_successful_login_costs_one_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _Checks(monkeypatch)
    assert services.login("real_user", PW) is not None
    assert checks.costs == [COST]


def test_unknown_user_is_not_faster_than_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same thing measured: medians at cost 10 (~60 ms a check), a generous ratio."""
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "10")
    services.create_user("timed_user", "timed@example.com", PW)

    def median(username: str, password: str) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            assert services.authenticate_user(username, password) is None
            times.append(time.perf_counter() - t0)
        return sorted(times)[1]

    median("nobody", PW)  # the stand-in hash is made once per cost
    wrong = median("timed_user", PW + "!")
    for username, password in [
        ("nobody", PW),
        ("timed_user", "p" * 73),
        ("timed_user", PW + "\x00"),
    ]:
        assert median(username, password) >= 0.5 * wrong, (username, password)


# --- item 5: bcrypt never runs inside a write transaction --------------------------------


@pytest.mark.parametrize("username", ["slow_user", "no_such_user"])
def test_a_failing_login_does_not_stall_writers(
    username: str, session_local: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = 14  # ~1 s a check: far longer than any write
    world = services.create_world("busy_world")
    _user_with_hash(
        session_local,
        "slow_user",
        bcrypt.hashpw(PW.encode(), bcrypt.gensalt(rounds=rounds)).decode(),
    )
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", str(rounds))
    checks = _Checks(monkeypatch)
    result: list[object] = []
    login = threading.Thread(target=lambda: result.append(services.login(username, "wrong" * 3)))
    login.start()
    try:
        assert checks.started.wait(60)
        t0 = time.perf_counter()
        services.set_block(world.id, 1, 2, 3, "stone")
        wrote = time.perf_counter() - t0
        finished_first = checks.finished.is_set()
    finally:
        login.join(120)
    assert result == [None]
    assert not finished_first, "the write waited for the bcrypt check"
    assert wrote < 0.5 * max(checks.seconds)


# --- item 6: user_for_token returns a User or None, always --------------------------------


@contextlib.contextmanager
def _write_locked(engine: Engine) -> Iterator[None]:
    """Another connection holds the write lock (SQLite) or the session rows' locks
    (PostgreSQL) until the block ends."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT id FROM user_sessions FOR UPDATE"))
            else:
                conn.execute(text("UPDATE users SET is_active = is_active"))
            yield


def _age(session_local: sessionmaker[Session], token: str, minutes: int) -> None:
    with session_local() as s:
        row = s.scalar(
            select(UserSession).where(
                UserSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        )
        assert row is not None
        row.last_seen_at = row.last_seen_at - timedelta(minutes=minutes)
        s.commit()


def _last_seen(session_local: sessionmaker[Session], token: str) -> Any:
    with session_local() as s:
        return s.scalar(
            select(UserSession.last_seen_at).where(
                UserSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        )


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # reported by the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_user_for_token_while_another_transaction_holds_the_write_lock(
    engine: Engine, session_local: sessionmaker[Session]
) -> None:
    services.create_user("token_user", "token@example.com", PW)
    token = services.login("token_user", PW)
    assert token is not None
    _age(session_local, token, 2)  # due for a last_seen_at refresh
    before = _last_seen(session_local, token)
    with _write_locked(engine):
        thread, out = _in_thread(lambda: services.user_for_token(token))
        thread.join(10)
        answered_under_lock = not thread.is_alive()
    thread.join(60)
    assert answered_under_lock, "user_for_token waited for the write lock"
    assert len(out) == 1 and isinstance(out[0], User), out
    # Once the lock is gone, the refresh happens.
    user = services.user_for_token(token)
    assert user is not None and user.username == "token_user"
    assert _last_seen(session_local, token) > before


def test_user_for_token_under_concurrent_writes(
    session_local: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxeldb.services import _users

    monkeypatch.setattr(_users, "_TOUCH_INTERVAL", timedelta(0))  # refresh on every call
    world = services.create_world("written_world")
    services.create_user("busy_user", "busy@example.com", PW)
    token = services.login("busy_user", PW)
    assert token is not None
    stop = threading.Event()

    def writer() -> int:
        n = 0
        while not stop.is_set():
            services.set_block(world.id, n % 16, 0, 0, f"block_{n % 7}")
            n += 1
        return n

    thread, written = _in_thread(writer)
    answers: list[object] = []
    try:
        for _ in range(150):
            try:
                answers.append(services.user_for_token(token))
            except Exception as exc:
                answers.append(exc)
    finally:
        stop.set()
        thread.join(60)
    assert written and isinstance(written[0], int) and written[0] > 0, written
    failures = [a for a in answers if not isinstance(a, User)]
    assert failures == []


# --- item 12: hostile input is a ValidationError (or None for a lookup) ---------------------


@pytest.fixture
def ids() -> dict[str, Any]:
    user = services.create_user("owner", "owner@example.com", PW)
    world = services.create_world("hostile_world")
    character = services.create_character(user.id, world.id, "hero", "mage")
    story = services.create_story(world.id, "tale", "quest")
    services.create_agent("agent_smith")
    return {"user": user.id, "world": world.id, "character": character.id, "story": story.id}


def _deep(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["k"] = {}
        node = node["k"]
    return root


def _deep_list(depth: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return {"k": value}


BAD_TEXT = {"nul": "bad\x00text", "surrogate": "bad\ud800text"}

# (what, call(ids, bad text), the field the ValidationError names)
TEXT_CALLS: list[tuple[str, Callable[[dict[str, Any], str], object], str]] = [
    ("create_user.username", lambda i, b: services.create_user(b, "n@example.com", PW), "username"),
    ("create_user.email", lambda i, b: services.create_user("newbie", b + "@x.com", PW), "email"),
    (
        "create_user.password",
        lambda i, b: services.create_user("newbie", "n@x.com", PW + b),
        "password",
    ),
    ("change_password", lambda i, b: services.change_password(i["user"], PW + b), "new_password"),
    ("create_world.name", lambda i, b: services.create_world(b), "name"),
    ("create_world.value", lambda i, b: services.create_world("w2", {"k": b}), "settings"),
    ("create_world.key", lambda i, b: services.create_world("w2", {b: 1}), "settings"),
    (
        "create_world.nested",
        lambda i, b: services.create_world("w2", {"k": [{"x": b}]}),
        "settings",
    ),
    (
        "update_world_settings",
        lambda i, b: services.update_world_settings(i["world"], {"k": b}),
        "settings",
    ),
    (
        "create_character.name",
        lambda i, b: services.create_character(i["user"], i["world"], b, "mage"),
        "name",
    ),
    (
        "create_character.class",
        lambda i, b: services.create_character(i["user"], i["world"], "x", b),
        "char_class",
    ),
    ("add_item", lambda i, b: services.add_item(i["character"], b), "item_name"),
    ("create_story.title", lambda i, b: services.create_story(i["world"], b, "quest"), "title"),
    ("create_story.type", lambda i, b: services.create_story(i["world"], "t", b), "story_type"),
    (
        "make_choice",
        lambda i, b: services.make_choice(i["story"], i["character"], b),
        "choice_text",
    ),
    ("create_agent.name", lambda i, b: services.create_agent(b), "agent_name"),
    ("create_agent.type", lambda i, b: services.create_agent("a2", b), "agent_type"),
    (
        "create_agent.configuration",
        lambda i, b: services.create_agent("a2", "g", {"k": b}),
        "configuration",
    ),
    (
        "run_agent_activity.agent",
        lambda i, b: services.run_agent_activity(b, i["world"], "t", {}),
        "agent_name",
    ),
    (
        "run_agent_activity.type",
        lambda i, b: services.run_agent_activity("agent_smith", i["world"], b, {}),
        "activity_type",
    ),
    (
        "run_agent_activity.data",
        lambda i, b: services.run_agent_activity("agent_smith", i["world"], "t", {"k": b}),
        "data",
    ),
]


@pytest.mark.parametrize("bad", list(BAD_TEXT.values()), ids=list(BAD_TEXT))
@pytest.mark.parametrize(("what", "call", "field"), TEXT_CALLS, ids=[c[0] for c in TEXT_CALLS])
def test_hostile_text_is_a_validation_error(
    ids: dict[str, Any],
    what: str,
    call: Callable[[dict[str, Any], str], object],
    field: str,
    bad: str,
) -> None:
    with pytest.raises(ValidationError) as info:
        call(ids, bad)
    assert info.value.field == field, (what, info.value)


BAD_JSON: dict[str, Any] = {
    "deep_dict": _deep(5_000),
    "deep_list": _deep_list(5_000),
    "too_deep": _deep(100),
    "huge_int": {"k": 10**5_000},
    "int_beyond_64_bits": {"k": 2**64},
    "huge": {"k": "x" * 2_000_000},
    "many_keys": {f"k{n}": n for n in range(100_000)},
    "nan": {"k": float("nan")},
}

JSON_CALLS: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], object], str]] = [
    ("create_world", lambda i, v: services.create_world("w2", v), "settings"),
    (
        "update_world_settings",
        lambda i, v: services.update_world_settings(i["world"], v),
        "settings",
    ),
    ("create_agent", lambda i, v: services.create_agent("a2", "g", v), "configuration"),
    (
        "run_agent_activity",
        lambda i, v: services.run_agent_activity("agent_smith", i["world"], "t", v),
        "data",
    ),
]


@pytest.mark.parametrize("bad", list(BAD_JSON.values()), ids=list(BAD_JSON))
@pytest.mark.parametrize(("what", "call", "field"), JSON_CALLS, ids=[c[0] for c in JSON_CALLS])
def test_hostile_json_is_a_validation_error(
    ids: dict[str, Any],
    what: str,
    call: Callable[[dict[str, Any], dict[str, Any]], object],
    field: str,
    bad: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as info:
        call(ids, bad)
    assert info.value.field == field, (what, info.value)


def test_json_within_the_limits_is_kept(ids: dict[str, Any]) -> None:
    settings = {"deep": _deep(30), "big": 2**63 - 1, "small": -(2**63), "text": "é" * 10_000}
    world = services.create_world("w3", settings)
    assert services.get_world_settings(world.id)["deep"] == _deep(30)
    assert services.get_world_settings(world.id)["big"] == 2**63 - 1


@pytest.mark.parametrize("bad", list(BAD_TEXT.values()), ids=list(BAD_TEXT))
def test_hostile_lookups_answer_none(ids: dict[str, Any], bad: str) -> None:
    assert services.login(bad, PW) is None
    assert services.login("owner", PW + bad) is None
    assert services.authenticate_user(bad, PW) is None
    assert services.authenticate_user("owner", bad) is None
    assert services.user_for_token(bad) is None
    assert services.user_for_token("x" * 100 + bad) is None
    services.logout(bad)  # nothing to revoke, no error
    assert services.login("owner", PW) is not None  # the real user is unharmed


# --- decisions: case-insensitive names, blank passwords, change_password ---------------------


def test_usernames_are_one_user_whatever_the_case() -> None:
    services.create_user("alice", "alice@example.com", PW)
    for variant in ["ALICE", "Alice", "aLiCe"]:
        with pytest.raises(ValidationError) as info:
            services.create_user(variant, f"{variant}2@example.com", PW)
        assert info.value.field == "username"
        user = services.authenticate_user(variant, PW)
        assert user is not None and user.username == "alice"
        assert services.login(variant, PW) is not None


def test_emails_are_one_address_whatever_the_case() -> None:
    services.create_user("bob", "Bob.Smith@example.com", PW)
    for variant in ["bob.smith@example.com", "BOB.SMITH@EXAMPLE.COM"]:
        with pytest.raises(ValidationError) as info:
            services.create_user("bob2", variant, PW)
        assert info.value.field == "email"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("Carol", "c1@example.com"), ("carol", "c2@example.com")),
        (("carol1", "Carol@Example.com"), ("carol2", "carol@example.com")),
    ],
)
def test_the_database_refuses_case_variants(
    session_local: sessionmaker[Session], first: tuple[str, str], second: tuple[str, str]
) -> None:
    """The unique indexes on lower(username) and lower(email) hold without the services."""
    with session_local() as s:
        s.add(User(username=first[0], email=first[1], password_hash="!"))
        s.commit()
        s.add(User(username=second[0], email=second[1], password_hash="!"))
        with pytest.raises(IntegrityError):
            s.commit()


@pytest.mark.parametrize(
    "password",
    [
        " " * 14,
        "\t\n\r\f\v" * 3,
        "\u00a0\u2003\u3000" * 5,  # no-break, em and ideographic spaces
        "\u200b" * 14,  # zero-width space
        "\u200b\u200c\u200d\u2060\ufeff" * 3,  # zero-width joiners, word joiner, BOM
        "\u3164" * 14,  # Hangul filler: blank, though not "whitespace"
        "\u2800" * 14,  # Braille blank
        "\u0301" * 14,  # combining marks alone
        " \u200b" * 7,
    ],
)
def test_blank_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError) as info:
        services.create_user("blank_pw", "blank@example.com", password)
    assert info.value.field == "password"


def test_passwords_with_spaces_are_fine() -> None:
    assert services.create_user("spacey", "spacey@example.com", "  a  b  c  d  e  ") is not None


def test_change_password_asks_for_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    user = services.create_user("greta", "greta@example.com", PW)
    token = services.login("greta", PW)
    assert token is not None
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", str(COST))
    checks = _Checks(monkeypatch)
    with pytest.raises(ValidationError) as info:
        services.change_password(user.id, "a new passphrase", current_password="not it at all")
    assert info.value.field == "current_password"
    assert checks.at(COST) == 1  # as long as a wrong login
    assert services.user_for_token(token) is not None  # nothing changed
    assert services.authenticate_user("greta", PW) is not None
    services.change_password(user.id, "a new passphrase", current_password=PW)
    assert services.user_for_token(token) is None
    assert services.authenticate_user("greta", "a new passphrase") is not None
    # Without current_password it is the administrator's reset (docs/security.md).
    services.change_password(user.id, "an admin reset one")
    assert services.authenticate_user("greta", "an admin reset one") is not None
