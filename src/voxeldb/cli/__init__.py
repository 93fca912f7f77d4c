"""The ``voxeldb`` command line; ``python -m voxeldb`` runs the same program."""

from __future__ import annotations

from voxeldb.cli._app import app, main, run

__all__ = ["app", "main", "run"]
