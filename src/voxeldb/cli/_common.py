"""What every command shares: the global options, consoles, progress bars, opening the database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from voxeldb._connect import Database

__all__ = [
    "Options",
    "RateColumn",
    "err",
    "make_progress",
    "open_db",
    "options",
    "out",
    "progress_bar",
]

out = Console(highlight=False, soft_wrap=True)
"""Results go to stdout."""
err = Console(stderr=True, highlight=False)
"""Progress, notes and errors go to stderr, so stdout stays parseable (``--json``)."""


@dataclass
class Options:
    database_url: str | None = None
    redis_url: str | None = None


def options(ctx: typer.Context) -> Options:
    root = ctx.find_root()
    if not isinstance(root.obj, Options):
        root.obj = Options()
    return root.obj


@contextlib.contextmanager
def open_db(ctx: typer.Context) -> Iterator[Database]:
    """``voxeldb.connect`` with the global options (else DATABASE_URL / REDIS_URL)."""
    import voxeldb

    opts = options(ctx)
    db = voxeldb.connect(opts.database_url, cache=opts.redis_url)
    try:
        yield db
    finally:
        db.close()


class RateColumn(ProgressColumn):
    """``1,234 chunks/s``: the rate over rich's sliding window."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"- {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(unit: str) -> Iterator[Progress]:
    """A progress bar on stderr that vanishes when the command fails (the error stays one line)."""
    progress = make_progress(unit)
    progress.start()
    try:
        yield progress
    except BaseException:
        progress.live.transient = True
        err.quiet = True
        try:
            progress.stop()
        finally:
            err.quiet = False
        raise
    progress.stop()


def make_progress(unit: str) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
