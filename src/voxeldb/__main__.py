"""``python -m voxeldb``: the ``voxeldb`` command line."""

from __future__ import annotations

from voxeldb.cli import main

if __name__ == "__main__":
    main()
