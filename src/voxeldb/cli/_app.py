"""The ``voxeldb`` command: setup, generate, snapshot, migrate, health, map, import, journal.

A user mistake (unknown world, bad URL, missing or corrupt file, bad option) prints one line
to stderr and exits 2; progress and notes go to stderr, results to stdout. Each command lives
in a module of its own and imports the library inside its function: ``voxeldb --help`` loads
typer and rich only.

Only typer's public API is used (typer 0.29 vendors click as a private module and no longer
installs click): every error typer raises is a :class:`typer.TyperException`, usage errors
carry the ``ctx`` of their command, and ``NoArgsIsHelpError`` is recognised by its name, as
typer itself does.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from voxeldb.cli._common import CommandGroup, CommandLineError, Options, err, out
from voxeldb.cli._health import health
from voxeldb.cli._import import import_app
from voxeldb.cli._journal import history, journal_app, rollback, watch
from voxeldb.cli._map import map_command
from voxeldb.cli._migrate import migrate
from voxeldb.cli._setup import generate, setup
from voxeldb.cli._snapshot import snapshot_app

__all__ = ["app", "run"]

app = typer.Typer(
    name="voxeldb",
    help="Voxel worlds in PostgreSQL or SQLite: set up, generate, snapshot, migrate, inspect.",
    cls=CommandGroup,
    no_args_is_help=True,
    # The callback runs without a command too: that is how `--version` (a flag, no value) is
    # answered, and how a missing command is told apart from `--version`.
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals hold database URLs with passwords
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the database \\[default: DATABASE_URL, else "
            "sqlite:///voxeldb.sqlite3].",
            show_default=False,
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL of the chunk cache, or 'memory' for none \\[default: REDIS_URL].",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", show_default=False)
    ] = False,
) -> None:
    if version:
        if ctx.invoked_subcommand is not None:
            raise CommandLineError("--version takes no value and no command", ctx=ctx)
        import voxeldb

        out.print(f"voxeldb {voxeldb.__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        raise CommandLineError("missing command", ctx=ctx)
    ctx.obj = Options(database_url=database_url, redis_url=redis_url)


app.command()(setup)
app.command()(generate)
app.add_typer(snapshot_app, name="snapshot")
app.command()(migrate)
app.command()(health)
app.command("map")(map_command)
app.add_typer(import_app, name="import")
app.command()(history)
app.command()(rollback)
app.command()(watch)
app.add_typer(journal_app, name="journal")


# --- entry point -------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int = 2) -> int:
    err.print(f"voxeldb: error: {_one_line(message)}", markup=False, soft_wrap=True)
    return code


_GLOBAL_OPTIONS = ("--database-url", "--redis-url")


def _hoist_global_options(argv: list[str]) -> list[str]:
    """Move ``--database-url``/``--redis-url`` to the front: they work after the command too."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest.extend(argv[i:])
            break
        if token in _GLOBAL_OPTIONS and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 2
            continue
        if token.startswith(tuple(f"{o}=" for o in _GLOBAL_OPTIONS)):
            front.append(token)
        else:
            rest.append(token)
        i += 1
    return front + rest


def _library_error(exc: Exception) -> str | None:
    """The one-line message for an error the user can act on, or None (a bug: re-raise).

    SQLAlchemy is only consulted when a command has imported it already.
    """
    from voxeldb.errors import VoxelDBError

    if isinstance(exc, VoxelDBError):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        detail = str(exc.orig) if exc.orig is not None else str(exc)
        return f"cannot use the database: {detail.strip().splitlines()[0][:300]}"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    try:
        args = _hoist_global_options(list(sys.argv[1:] if argv is None else argv))
        rv = app(args=args, prog_name="voxeldb", standalone_mode=False)
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            out.print(ctx.get_help() if ctx is not None else "", markup=False)
            return 2
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return _fail(exc.format_message() + where, int(getattr(exc, "exit_code", 1)))
    except typer.Abort:
        return _fail("aborted", 1)
    except KeyboardInterrupt:
        err.print("voxeldb: interrupted", markup=False)
        return 130
    except Exception as exc:
        message = _library_error(exc)
        if message is None:
            raise
        return _fail(message)
    return rv if isinstance(rv, int) else 0
