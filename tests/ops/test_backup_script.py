"""scripts/backup.sh against real databases: the dump restores and a row survives."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import psycopg

from tests._services import PG_ADMIN_DSN, temporary_database, temporary_postgres_database

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "backup.sh"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _run_backup(url: str, target: Path, *extra: str) -> Path:
    env = {**os.environ, "DATABASE_URL": url}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "-d", str(target), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == target
    assert not list(target.glob("*.partial"))
    return path


def _old_file(target: Path, name: str) -> Path:
    old = target / name
    old.write_bytes(b"stale")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    return old


def test_postgres_backup_restores_with_pg_restore(tmp_path: Path) -> None:
    with temporary_postgres_database() as src_url:
        with psycopg.connect(_libpq(src_url)) as conn:
            conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO survivors VALUES (1, 'steve')")
        dbname = src_url.rsplit("/", 1)[1]
        stale = _old_file(tmp_path, f"voxeldb-{dbname}-20000101T000000Z.dump")
        other = _old_file(tmp_path, "voxeldb-otherdb-20000101T000000Z.dump")
        dump = _run_backup(src_url, tmp_path, "-k", "7")
        assert dump.suffix == ".dump" and dump.name.startswith(f"voxeldb-{dbname}-")
        assert not stale.exists(), "backups older than the retention must be pruned"
        assert other.exists(), "another database's backups are not ours to prune"

    with temporary_postgres_database() as dst_url:
        subprocess.run(
            ["pg_restore", "--no-owner", "-j", "2", "-d", _libpq(dst_url), str(dump)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with psycopg.connect(_libpq(dst_url)) as conn:
            rows = conn.execute("SELECT id, name FROM survivors").fetchall()
    assert rows == [(1, "steve")]
    with psycopg.connect(PG_ADMIN_DSN) as conn:  # the shared server is still fine
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sqlite_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    with temporary_database("sqlite") as url:
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE survivors (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO survivors VALUES (1, 'alex')")
        conn.commit()
        # The writer stays open (WAL not checkpointed): the backup must still see the row.
        backup = _run_backup(url, tmp_path / "nested")
        conn.close()
    assert backup.suffix == ".sqlite3"
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("SELECT id, name FROM survivors").fetchall() == [(1, "alex")]
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        copy.close()


def test_backup_refuses_missing_sqlite_file_and_bad_url(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/absent.sqlite3", "mysql://x@localhost/db"):
        proc = subprocess.run(
            ["bash", str(SCRIPT), "-d", str(tmp_path), url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("backup: ")
        assert not list(tmp_path.glob("voxeldb-*"))
