"""Start-up time of ``voxeldb --help`` and ``import voxeldb``, beside ``python -c pass``.

Each round starts a fresh interpreter, so these time what a user waits for. Run them with
``bash scripts/bench.sh -k startup``; the baseline is the interpreter's own start-up.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

VOXELDB = shutil.which("voxeldb", path=str(Path(sys.executable).parent)) or "voxeldb"

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import voxeldb'": [sys.executable, "-c", "import voxeldb"],
    "voxeldb --help": [VOXELDB, "--help"],
}


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_startup(benchmark: Any, name: str) -> None:
    benchmark.group = "start-up (fresh interpreter)"
    benchmark.pedantic(_run, args=(COMMANDS[name],), rounds=10, warmup_rounds=1, iterations=1)
