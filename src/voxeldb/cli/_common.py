"""What every command shares: the global options, consoles, progress bars, opening the database.

Nothing here imports the library's heavy parts (numpy, SQLAlchemy, Redis, Pillow): a command
imports what it needs inside its function, so that ``voxeldb --help`` starts fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

    from voxeldb import Database

__all__ = [
    "CommandLineError",
    "Options",
    "WorldArg",
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

WorldArg = Annotated[str, typer.Argument(help="The world's name or id.", show_default=False)]


class CommandLineError(typer.TyperException):
    """A mistake in the arguments that typer cannot see by itself: one line, exit status 2.

    ``run`` prints it like typer's own usage errors (``ctx`` names the command for the hint).
    """

    exit_code = 2

    def __init__(self, message: str, *, ctx: typer.Context | None = None) -> None:
        super().__init__(message)
        self.ctx = ctx


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
    """Description, bar, ``n/total``, rate (``1,234 chunks/s``), ETA and elapsed time."""
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

    class RateColumn(ProgressColumn):
        """The rate over rich's sliding window."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text(f"- {unit}/s", style="progress.data.speed")
            return Text(f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
