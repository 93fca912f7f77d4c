"""The README's Python examples run as written (against a fresh SQLite database)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voxeldb.meta import configure

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 2


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    url = f"sqlite:///{tmp_path}/voxeldb.sqlite3"
    monkeypatch.setenv("DATABASE_URL", url)
    configure(url)
    try:
        namespace: dict[str, object] = {}
        for block in python_blocks():
            exec(compile(block, str(README), "exec"), namespace)
    finally:
        configure(None)
    assert (tmp_path / "voxeldb.sqlite3").exists()
