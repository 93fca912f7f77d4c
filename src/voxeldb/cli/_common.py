"""What every command shares: the global options, consoles, progress bars, opening the database.

Nothing here imports the library's heavy parts (numpy, SQLAlchemy, Redis, Pillow): a command
imports what it needs inside its function, so that ``voxeldb --help`` starts fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.progress import Progress

    from voxeldb import Database

__all__ = [
    "CommandGroup",
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

WorldArg = Annotated[
    str, typer.Argument(metavar="WORLD", help="The world's name or id.", show_default=False)
]


class CommandLineError(typer.TyperException):
    """A mistake in the arguments that typer cannot see by itself: one line, exit status 2.

    ``run`` prints it like typer's own usage errors (``ctx`` names the command for the hint).
    """

    exit_code = 2

    def __init__(self, message: str, *, ctx: typer.Context | None = None) -> None:
        super().__init__(message)
        self.ctx = ctx


def _plain_flags(params: list[Any]) -> list[Any]:
    """Flags (``--grid/--no-grid``, ``--help``) take no value: show none in the help.

    typer's rich help labels every option with its type, flags too (``--grid <bool>``); an
    empty metavar is the label it prints instead.
    """
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class CommandGroup(TyperGroup):
    """The ``voxeldb`` command and its sub-groups: help without ``<bool>`` on flags.

    Given as ``typer.Typer(cls=CommandGroup)``; every command it hands out (to run or to show
    its help) is fixed on the way, so a new ``app.command()`` needs nothing more.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command.get_params(ctx))
        return command


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
