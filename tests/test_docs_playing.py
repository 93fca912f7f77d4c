"""docs/playing.md's examples run as written, in order, and print what the page says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from voxeldb import services
from voxeldb.meta import configure

DOC = Path(__file__).resolve().parent.parent / "docs" / "playing.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _expected(block: str) -> list[str]:
    """The ``# value`` comments after print(...) calls, in order."""
    out = []
    for line in block.splitlines():
        if line.lstrip().startswith("print(") and "  # " in line:
            out.append(line.split("  # ", 1)[1].split(":")[0].strip())
    return out


def test_playing_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    url = f"sqlite:///{tmp_path}/play.sqlite3"
    monkeypatch.setenv("DATABASE_URL", url)
    import voxeldb

    db = voxeldb.connect(url, cache="memory")
    db.create_schema()
    db.close()
    configure(url)
    services.reset_cache()
    namespace: dict[str, object] = {}
    printed: list[str] = []
    expected: list[str] = []
    try:
        for block in _blocks():
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(block, str(DOC), "exec"), namespace)
            printed += buffer.getvalue().splitlines()
            expected += _expected(block)
    finally:
        configure(None)
        services.reset_cache()
    assert len(_blocks()) >= 7
    plain = [line for line in printed if not line.startswith("refused:")]
    assert len(plain) == len(expected), (plain, expected)
    for got, want in zip(plain, expected, strict=True):
        assert got.startswith(want) or want.startswith(got[: len(want)]), (got, want)
    assert any(line.startswith("refused:") for line in printed)
