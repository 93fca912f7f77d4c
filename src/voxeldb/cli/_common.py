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
    from voxeldb.services import WorldRef

__all__ = [
    "CommandGroup",
    "CommandLineError",
    "Options",
    "WorldArg",
    "close_world_names",
    "err",
    "find_world",
    "make_progress",
    "note_similar_worlds",
    "open_db",
    "options",
    "out",
    "progress_bar",
    "require_database",
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
    its help) is fixed on the way, so a new ``app.command()`` or ``app.add_typer()`` needs
    nothing more: a sub-group made without ``cls=CommandGroup`` becomes one.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if type(command) is TyperGroup:
            command.__class__ = CommandGroup  # adds behaviour only, no state
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


def require_database(ctx: typer.Context) -> None:
    """Refuse a SQLite database file that does not exist, before anything creates it.

    Only ``setup`` and ``generate`` may create a database: for every other command a typo in
    the URL is one line, exit 2, and no empty file left behind.
    """
    from voxeldb._engine import require_database_file
    from voxeldb._settings import get_settings

    require_database_file(options(ctx).database_url or get_settings().database_url)


@contextlib.contextmanager
def open_db(ctx: typer.Context, *, may_create: bool = False) -> Iterator[Database]:
    """``voxeldb.connect`` with the global options (else DATABASE_URL / REDIS_URL).

    Unless ``may_create``, a SQLite file that does not exist is refused (see
    :func:`require_database`).
    """
    import voxeldb

    if not may_create:
        require_database(ctx)
    opts = options(ctx)
    db = voxeldb.connect(opts.database_url, cache=opts.redis_url)
    try:
        yield db
    finally:
        db.close()


def close_world_names(db: Database, ref: str, *, limit: int = 3) -> list[str]:
    """Names of worlds close to ``ref``: the same but for case first, then difflib's matches.

    World names are case-sensitive (``Valley`` and ``valley`` are two worlds); this is only
    for saying "did you mean". Empty when the database cannot say (no schema, say).
    """
    import difflib

    from sqlalchemy import select

    from voxeldb.meta import World

    try:
        with db.session() as s:
            names = list(s.scalars(select(World.name).limit(100_000)))
    except Exception:
        return []
    by_lower: dict[str, list[str]] = {}
    for name in names:
        if name != ref:
            by_lower.setdefault(name.lower(), []).append(name)
    keys = [ref.lower(), *difflib.get_close_matches(ref.lower(), list(by_lower), n=limit)]
    found = [name for key in dict.fromkeys(keys) for name in sorted(by_lower.get(key, []))]
    return found[:limit]


def _did_you_mean(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def find_world(db: Database, ref: str) -> WorldRef:
    """``resolve_world``, and on a miss "did you mean ..." with the close names."""
    from voxeldb.errors import NotFoundError
    from voxeldb.ops import resolve_world

    try:
        return resolve_world(db, ref)
    except NotFoundError as exc:
        close = close_world_names(db, ref.strip())
        if not close:
            raise
        raise NotFoundError(f"{exc}; did you mean {_did_you_mean(close)}?") from None


def note_similar_worlds(db: Database, name: str) -> None:
    """After creating world ``name``: say so when a world of a close name exists already."""
    close = close_world_names(db, name)
    if close:
        err.print(
            f"Note: world {_did_you_mean(close)} exists already; world names are case-sensitive.",
            markup=False,
        )


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
