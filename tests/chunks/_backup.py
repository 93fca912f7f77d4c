"""Backing a test database up and restoring it the way an operator does (docs/operations.md).

SQLite: the online backup API copies the file (and restores it over the live one).
PostgreSQL: ``pg_dump -Fc``, then ``DROP DATABASE ... WITH (FORCE)``, ``CREATE DATABASE`` and
``pg_restore``.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests._services import PG_ADMIN_DSN, PG_BIN


def _dsn(dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname=dbname)


def backup(url: str, to: Path) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(str(parsed.database)) as src, sqlite3.connect(to) as dst:
            src.backup(dst)
        return
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-f", str(to), "-d", _dsn(str(parsed.database))],
        check=True,
        capture_output=True,
    )


def restore(url: str, backup_file: Path) -> None:
    """Put ``backup_file`` back as the database at ``url`` (engines on it may stay open)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(backup_file) as src, sqlite3.connect(str(parsed.database)) as dst:
            src.backup(dst)
        return
    name = str(parsed.database)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [str(PG_BIN / "pg_restore"), "-d", _dsn(name), str(backup_file)],
        check=True,
        capture_output=True,
    )
