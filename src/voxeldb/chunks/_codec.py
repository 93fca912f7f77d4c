"""Compatibility shim: the codec is now the package ``voxeldb.chunks.codec``. Delete when unused."""

from voxeldb.chunks.codec import *  # noqa: F403
from voxeldb.chunks.codec import __all__ as __all__
