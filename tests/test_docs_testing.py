"""docs/testing.md's fixture works as written: its blocks run under pytest, on both backends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._services import PG_URL_TEMPLATE, require_postgres

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def _blocks() -> dict[str, str]:
    blocks = re.findall(r"```python\n(# (\S+)\n.*?)```", DOC.read_text(), flags=re.S)
    return {name: code for code, name in blocks}


def test_doc_has_the_fixture_and_a_test() -> None:
    assert set(_blocks()) == {"conftest.py", "test_users.py"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_documented_fixture_runs(tmp_path: Path, backend: str) -> None:
    for name, code in _blocks().items():
        (tmp_path / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    if backend == "postgresql":
        require_postgres()
        env["TEST_POSTGRES_ADMIN_URL"] = PG_URL_TEMPLATE.format(dbname="postgres")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout=120",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
