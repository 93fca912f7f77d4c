"""A fresh install works: the wheel, in a clean virtual environment, from another directory.

This is the check that catches an undeclared dependency (``click`` once): the wheel is
installed with nothing but its declared requirements, and the command runs from a directory
that holds no source tree, so nothing from the development environment can stand in.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL
    )


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL")
    }
    wheels = tmp_path / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        cwd=tmp_path,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("voxeldb-*.whl")

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, env=env)
    assert installed.returncode == 0, installed.stderr
    checked = _run([str(python), "-m", "pip", "check"], cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["COLUMNS"] = "200"
    voxeldb = str(venv / "bin" / "voxeldb")

    helped = _run([voxeldb, "--help"], cwd=elsewhere, env=env)
    assert helped.returncode == 0, helped.stderr
    for command in ("setup", "generate", "snapshot", "migrate", "health", "map"):
        assert command in helped.stdout

    # The installed package is the one that runs, not the source tree.
    where = _run(
        [str(python), "-c", "import voxeldb; print(voxeldb.__file__)"], cwd=elsewhere, env=env
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    database = tmp_path / "fresh.sqlite3"
    env["DATABASE_URL"] = f"sqlite:///{database}"
    created = _run([voxeldb, "setup", "--create-tables"], cwd=elsewhere, env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Schema is at the newest revision (sqlite)" in created.stdout
    with sqlite3.connect(database) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"users", "worlds", "world_chunks", "block_states", "characters", "stories"} <= tables
    assert len(revision) == 1
    assert not list(elsewhere.iterdir()), "the command left files in the working directory"
