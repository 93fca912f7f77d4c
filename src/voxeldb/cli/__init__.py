"""The ``voxeldb`` command line; ``python -m voxeldb`` runs the same program.

``main`` first offers the arguments to ``voxeldb map``'s direct path (``_map_fast``), which
needs neither typer nor rich; ``app`` and ``run`` (and with them typer) are imported on
first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxeldb.cli._app import app, run

__all__ = ["app", "main", "run"]


def main() -> None:
    """The ``voxeldb`` console script."""
    from voxeldb.cli._map_fast import fast_map

    code = fast_map(sys.argv[1:])
    if code is None:
        from voxeldb.cli._app import run

        code = run()
    sys.exit(code)


def __getattr__(name: str) -> Any:
    if name in ("app", "run"):
        from voxeldb.cli import _app

        value = getattr(_app, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'voxeldb.cli' has no attribute {name!r}")
