"""``import voxeldb`` and ``voxeldb --help`` load no heavy library (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "sqlalchemy", "redis", "PIL", "pydantic", "alembic", "psycopg", "lz4")
# typer 0.29 itself validates some option types (tuples, for one) with pydantic.
HEAVY_BUT_TYPER = tuple(m for m in HEAVY if m != "pydantic")


def _loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    return sorted(m for m in heavy if m in modules)


def test_import_voxeldb_is_cheap() -> None:
    assert _loaded_after("import voxeldb, voxeldb.errors") == []


def test_help_is_cheap() -> None:
    code = (
        "import contextlib, io\n"
        "from voxeldb.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['--help']) == 0\n"
        "    assert run(['map', '--help']) == 0"
    )
    assert _loaded_after(code, HEAVY_BUT_TYPER) == []


def test_lazy_names_resolve() -> None:
    code = (
        "import voxeldb\n"
        "assert callable(voxeldb.connect)\n"
        "assert voxeldb.Database.__name__ == 'Database'\n"
        "assert voxeldb.ChunkStore.__name__ == 'ChunkStore'\n"
        "assert set(voxeldb.__all__) <= set(dir(voxeldb))"
    )
    assert "numpy" in _loaded_after(code)
