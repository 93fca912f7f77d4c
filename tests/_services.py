"""Real services for tests: throwaway databases on the shared servers, and throwaway servers.

The shared PostgreSQL and Redis are never stopped or reconfigured by a test; fault tests
start their own servers on free loopback ports with the helpers below.

Environment (all optional):

- ``VOXELDB_TEST_PG_DSN``: libpq DSN of an admin connection to the shared PostgreSQL, used to
  create and drop the test databases (default ``host=127.0.0.1 port=5432 user=postgres
  dbname=postgres``);
- ``VOXELDB_TEST_PG_URL``: SQLAlchemy URL of a test database, ``{dbname}`` standing for its name
  (default ``postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}``);
- ``VOXELDB_TEST_REDIS_URL``: the shared Redis (default ``redis://127.0.0.1:6379/0``); tests use
  key prefixes of their own on it;
- ``VOXELDB_TEST_PG_BIN``: the directory of ``initdb`` and ``pg_ctl`` for the fault tests' private
  PostgreSQL servers (default ``/usr/lib/postgresql/15/bin``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

PG_ADMIN_DSN = os.environ.get(
    "VOXELDB_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_TEMPLATE = os.environ.get(
    "VOXELDB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
)
REDIS_TEST_URL = os.environ.get("VOXELDB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_BIN = Path(os.environ.get("VOXELDB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def require_postgres() -> None:
    """Fail (never skip) when the shared PostgreSQL is unreachable."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:  # pragma: no cover - environment failure
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN!r}: {exc}. "
            "Run scripts/ensure-services.sh (the test command does)."
        ) from exc


def require_redis(url: str = REDIS_TEST_URL) -> None:
    """Fail (never skip) when the shared Redis is unreachable."""
    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as exc:  # pragma: no cover - environment failure
        raise RuntimeError(
            f"Redis is not reachable at {url!r}: {exc}. "
            "Run scripts/ensure-services.sh (the test command does)."
        ) from exc


def require_external(present: bool, what: str, how: str) -> None:
    """Skip a test whose ``what`` (a system package, the shared sample data) is missing on a
    developer's machine; under CI (``CI`` set) fail instead, since ``.ci/run`` provides it and
    a skip there would hide a broken install."""
    if present:
        return
    message = f"{what} is not there ({how})"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """CREATE DATABASE voxeldb_test_<random> on the shared server; drop it afterwards."""
    require_postgres()
    name = f"voxeldb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(dbname=name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database(backend: str) -> Iterator[str]:
    """An empty database of ``backend`` ("sqlite" or "postgresql"), as an SQLAlchemy URL."""
    if backend == "postgresql":
        with temporary_postgres_database() as url:
            yield url
    elif backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="voxeldb_test_")
        try:
            yield f"sqlite:///{directory}/voxeldb.sqlite3"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    else:  # pragma: no cover
        raise ValueError(f"unknown backend {backend!r}")


def _migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest revision, through the public API."""
    import voxeldb

    db = voxeldb.connect(url, cache="memory")
    try:
        db.create_schema()
    finally:
        db.close()  # disposes the pool: a PostgreSQL template must have no connection left


@dataclass
class TemplateDatabase:
    """A database migrated to head once, cloned for each test that needs a migrated one.

    PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` (a file copy, no migration per test).
    SQLite: the file, checkpointed so that it holds everything, copied.
    """

    backend: str
    name: str
    """The PostgreSQL database's name, or the SQLite file's path."""

    @contextlib.contextmanager
    def clone(self) -> Iterator[str]:
        """A new database with the template's contents, as an SQLAlchemy URL; dropped afterwards."""
        if self.backend == "sqlite":
            directory = tempfile.mkdtemp(prefix="voxeldb_test_")
            try:
                target = Path(directory) / "voxeldb.sqlite3"
                shutil.copyfile(self.name, target)
                yield f"sqlite:///{target}"
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            return
        name = f"voxeldb_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for attempt in range(50):
                try:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
                    break
                except psycopg.errors.ObjectInUse:
                    # Someone (autovacuum, a stray connection) is on the template for a moment.
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        try:
            yield PG_URL_TEMPLATE.format(dbname=name)
        finally:
            _dropper.drop_later(name)


class _Dropper:
    """Drops the tests' PostgreSQL databases on a thread of its own, while the next test runs.

    ``DROP DATABASE`` takes 0.2-2 s (it waits for the server to flush); nothing waits for it
    but :meth:`drain`, which the end of the test session (and of each template) calls.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def drop_later(self, name: str) -> None:
        with self._lock:
            self._names.append(name)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="drop-test-dbs", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._names:
                    self._lock.notify_all()
                    self._thread = None
                    return
                name = self._names[0]
            with (
                contextlib.suppress(Exception),  # a leftover database is no test failure
                psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            with self._lock:
                self._names.remove(name)

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until every database handed over has been dropped."""
        with self._lock:
            self._lock.wait_for(lambda: not self._names, timeout)


_dropper = _Dropper()


@contextlib.contextmanager
def migrated_template(backend: str) -> Iterator[TemplateDatabase]:
    """A database of ``backend`` migrated to head, to :meth:`~TemplateDatabase.clone`; dropped after."""
    if backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="voxeldb_test_tpl_")
        try:
            path = Path(directory) / "template.sqlite3"
            _migrate(f"sqlite:///{path}")
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
            yield TemplateDatabase(backend, str(path))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    elif backend == "postgresql":
        require_postgres()
        name = f"voxeldb_test_tpl_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            _migrate(PG_URL_TEMPLATE.format(dbname=name))
            yield TemplateDatabase(backend, name)
        finally:
            _dropper.drain()
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:  # pragma: no cover
        raise ValueError(f"unknown backend {backend!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


@dataclass
class ThrowawayRedis:
    """A private redis-server on a free loopback port: kill, pause and restart it at will."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                "256mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), "redis-server")

    def kill(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class ThrowawayPostgres:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port."""

    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{_pg_user()}@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._pg_ctl(
            "-o",
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1",
            "-l",
            str(self.datadir / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def _pg_user() -> str:
    # initdb refuses to run as root; run the cluster as "postgres" then.
    return "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    datadir = Path(tempfile.mkdtemp(prefix="voxeldb_pg_"))
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    subprocess.run(
        _as_pg_user(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(datadir),
                "-A",
                "trust",
                "-U",
                _pg_user(),
                "--no-sync",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ThrowawayPostgres(datadir=datadir, port=free_port())
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(datadir, ignore_errors=True)
