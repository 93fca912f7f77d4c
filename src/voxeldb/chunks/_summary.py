"""Chunk summaries for the store and its backends: the format lives in the kernel
(``voxeldb._summary``), so that ``voxeldb map`` can read summaries without this package."""

from __future__ import annotations

from voxeldb._summary import (
    SUMMARY_BODY_SIZE,
    SUMMARY_FORMAT,
    Summaries,
    open_summary,
    seal_summary,
    summaries_from_bodies,
    summarize,
)

__all__ = [
    "SUMMARY_BODY_SIZE",
    "SUMMARY_FORMAT",
    "Summaries",
    "open_summary",
    "seal_summary",
    "summaries_from_bodies",
    "summarize",
]
