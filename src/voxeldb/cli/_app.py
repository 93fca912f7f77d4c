"""The ``voxeldb`` command (CONTRACT §6): setup, generate, snapshot, migrate, health, map.

A user mistake (unknown world, bad URL, missing or corrupt file, bad option) prints one line
to stderr and exits 2; progress and notes go to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.progress import Progress
from rich.table import Table

from voxeldb.cli._common import Options, err, open_db, options, out, progress_bar

__all__ = ["app", "main", "run"]

app = typer.Typer(
    name="voxeldb",
    help="Voxel worlds in PostgreSQL or SQLite: set up, generate, snapshot, migrate, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals hold database URLs with passwords
    context_settings={"help_option_names": ["-h", "--help"]},
)
snapshot_app = typer.Typer(
    help="World snapshots: one portable file per world, restorable on either backend.",
    no_args_is_help=True,
)
app.add_typer(snapshot_app, name="snapshot")

WorldArg = Annotated[str, typer.Argument(help="The world's name or id.", show_default=False)]


def _version(value: bool) -> None:
    if value:
        import voxeldb

        out.print(f"voxeldb {voxeldb.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the database [default: DATABASE_URL, else "
            "sqlite:///voxeldb.sqlite3].",
            show_default=False,
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL of the chunk cache, or 'memory' for none [default: REDIS_URL].",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Options(database_url=database_url, redis_url=redis_url)


# --- setup -------------------------------------------------------------------------------------


@app.command()
def setup(
    ctx: typer.Context,
    full_setup: Annotated[
        bool, typer.Option("--full-setup", help="Create the tables, then add the sample data.")
    ] = False,
    create_tables: Annotated[
        bool,
        typer.Option("--create-tables", help="Bring the schema to the newest Alembic revision."),
    ] = False,
    sample_data: Annotated[
        bool,
        typer.Option(
            "--sample-data", help="Add the sample world (skipped when it exists already)."
        ),
    ] = False,
    size: Annotated[
        int,
        typer.Option("--size", min=1, max=256, help="Side of the sample world, in chunks."),
    ] = 16,
) -> None:
    """Create the schema and/or the sample data (exactly one of the three modes)."""
    chosen = [full_setup, create_tables, sample_data].count(True)
    if chosen != 1:
        raise _click_errors()[1](
            "choose exactly one of --full-setup, --create-tables, --sample-data",
            ctx=ctx,  # type: ignore[call-arg]
        )
    from voxeldb.setup import DatabaseSetup

    opts = options(ctx)
    with DatabaseSetup(opts.database_url, cache=opts.redis_url) as db_setup:
        db_setup.create_tables()
        out.print(f"Schema is at the newest revision ({db_setup.db.backend}).")
        if create_tables:
            return
        with err.status("Creating the sample world..."):
            report = db_setup.sample_data(size=size)
    if report.skipped:
        out.print(
            f"Sample world {report.world_name!r} exists already (id {report.world_id}): skipped."
        )
        return
    table = Table(title=f"Sample world {report.world_name!r} ({report.world_id})")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in report.counts.items():
        table.add_row(key, f"{value:,}")
    out.print(table)
    if report.passwords:
        out.print("Sample users (random passwords, shown once):")
        for username, password in report.passwords.items():
            out.print(f"  {username}: {password}")
    out.print(f"Done in {report.seconds:.1f} s.")


# --- generate ----------------------------------------------------------------------------------


@app.command()
def generate(
    ctx: typer.Context,
    world: WorldArg,
    radius: Annotated[
        int,
        typer.Option(
            "--radius", "-r", min=0, max=4096, help="Chunks around the centre in each direction."
        ),
    ],
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Terrain seed [default: the world's, else 0].", show_default=False
        ),
    ] = None,
    center: Annotated[
        tuple[int, int],
        typer.Option("--center", help="Centre chunk CX CZ.", show_default=True),
    ] = (0, 0),
    height: Annotated[
        int | None,
        typer.Option("--height", help="Height of a new world [default: 384].", show_default=False),
    ] = None,
    min_y: Annotated[
        int | None,
        typer.Option("--min-y", help="Lowest y of a new world [default: -64].", show_default=False),
    ] = None,
) -> None:
    """Bulk-write generated terrain around the centre; a new name creates the world."""
    from voxeldb._sample import ensure_world, generate_terrain

    side = 2 * radius + 1
    with open_db(ctx) as db:
        db.create_schema()
        ref, created = ensure_world(db, world, seed=seed, height=height, min_y=min_y)
        if created:
            err.print(f"Created world {ref.name!r} ({ref.id}).")
        with progress_bar("chunks") as progress:
            task = progress.add_task(f"Generating {ref.name}", total=side * side)
            written, seconds = generate_terrain(
                db,
                ref,
                radius=radius,
                center=center,
                seed=seed,
                progress=lambda n: progress.advance(task, n),
            )
    rate = written / seconds if seconds > 0 else float("inf")
    out.print(
        f"Wrote {written:,} chunks to world {ref.name!r} ({ref.id}) in {seconds:.2f} s: "
        f"{rate:,.0f} chunks/s."
    )


# --- snapshot ----------------------------------------------------------------------------------


@snapshot_app.command("create")
def snapshot_create(
    ctx: typer.Context,
    world: WorldArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Snapshot file (or directory) [default: ./<name>-<UTC time>.vxsnap].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write one portable, checksummed file holding a world."""
    from voxeldb._sample import resolve_world
    from voxeldb.setup import DatabaseSetup

    opts = options(ctx)
    with DatabaseSetup(opts.database_url, cache=opts.redis_url) as db_setup:
        ref = resolve_world(db_setup.db, world)
        with progress_bar("chunks") as progress:
            task = progress.add_task(f"Snapshot of {ref.name}", total=None)
            path = db_setup.create_world_snapshot(
                ref.id, output, progress=lambda n: progress.update(task, completed=n)
            )
            progress.update(task, total=progress.tasks[0].completed)
    from voxeldb._snapshot import read_manifest

    counts = read_manifest(path)["counts"]
    out.print(
        f"Wrote {path} ({path.stat().st_size:,} bytes): world {ref.name!r} ({ref.id}), "
        f"{counts.get('world_chunks', 0):,} chunks, {counts.get('characters', 0)} characters."
    )


@snapshot_app.command("restore")
def snapshot_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The snapshot file.", show_default=False)],
    as_name: Annotated[
        str | None,
        typer.Option("--as-name", help="Restore under this world name.", show_default=False),
    ] = None,
    new_id: Annotated[
        bool, typer.Option("--new-id", help="Give the world (and its rows) new ids: a copy.")
    ] = False,
) -> None:
    """Restore a world from a snapshot (made on either backend); chunks come back byte-identical."""
    from voxeldb._snapshot import read_manifest
    from voxeldb.setup import DatabaseSetup

    manifest = read_manifest(file)
    opts = options(ctx)
    with (
        DatabaseSetup(opts.database_url, cache=opts.redis_url) as db_setup,
        progress_bar("chunks") as progress,
    ):
        task = progress.add_task(
            f"Restoring {manifest['world']['name']}",
            total=int(manifest["counts"].get("world_chunks", 0)),
        )
        world_id = db_setup.restore_world_snapshot(
            file,
            new_id=new_id,
            name=as_name,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    name = as_name or manifest["world"]["name"]
    out.print(f"Restored world {name!r} as {world_id} from {file}.")


# --- migrate -----------------------------------------------------------------------------------


class _RichTransferProgress:
    """One bar per table that has rows (an empty table would only add noise)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def table_started(self, table: str, total: int, done: int) -> None:
        if total:
            self.tasks[table] = self.progress.add_task(table, total=total, completed=done)

    def advanced(self, table: str, rows: int) -> None:
        if table in self.tasks:
            self.progress.advance(self.tasks[table], rows)

    def table_finished(self, table: str, copied: int, skipped: bool) -> None:
        if skipped and table in self.tasks:
            self.progress.update(self.tasks[table], description=f"{table} (already there)")


def _require_sqlite_file(url: str, option: str) -> None:
    """A SQLite source must exist: connecting would silently create an empty file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # make_engine reports the bad URL
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).expanduser().is_file()
    ):
        raise typer.BadParameter(f"SQLite file {database} does not exist", param_hint=option)


@app.command()
def migrate(
    source: Annotated[
        str, typer.Option("--from", help="URL of the database to copy.", show_default=False)
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="URL of the (empty) database to copy into.", show_default=False),
    ],
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an interrupted migration into the same target."),
    ] = False,
) -> None:
    """Copy a whole database between SQLite and PostgreSQL (either direction)."""
    from voxeldb._engine import make_engine
    from voxeldb._transfer import transfer_database
    from voxeldb.meta import Base

    _require_sqlite_file(source, "--from")
    src = make_engine(source)
    dst = make_engine(target)
    try:
        with progress_bar("rows") as bar:
            watcher = _RichTransferProgress(bar)
            report = transfer_database(src, dst, Base.metadata, resume=resume, progress=watcher)
    finally:
        src.dispose()
        dst.dispose()
    total = sum(report.copied.values())
    chunks = report.copied.get("world_chunks", 0)
    note = f" ({len(report.skipped)} tables already there)" if report.skipped else ""
    out.print(
        f"Copied {total:,} rows ({chunks:,} chunks) in {report.seconds:.1f} s to "
        f"{dst.url.render_as_string(hide_password=True)}{note}."
    )


# --- health ------------------------------------------------------------------------------------


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


@app.command()
def health(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when degraded too (e.g. Redis down).")
    ] = False,
) -> None:
    """Database, schema, tables, cache and pool: exit 1 when unhealthy."""
    from voxeldb._ops_health import collect_health

    opts = options(ctx)
    redis_url = None if opts.redis_url == "memory" else opts.redis_url
    report = collect_health(opts.database_url, redis_url)
    if opts.redis_url == "memory":
        report["cache"] = {"redis_configured": False, **{
            k: v for k, v in report["cache"].items() if k == "in_process_lru_bytes"
        }}  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        _print_health(report)
    if report["status"] == "unhealthy" or (strict and report["status"] != "healthy"):
        raise typer.Exit(1)


def _print_health(report: dict[str, Any]) -> None:
    colour = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}[report["status"]]
    out.print(f"[bold {colour}]{report['status'].upper()}[/]")
    db = report["database"]
    summary = Table(show_header=False, box=None)
    summary.add_row("database", db["url"])
    summary.add_row("reachable", "yes" if db["reachable"] else "no")
    for key, label in (
        ("server_version", "server"),
        ("latency_ms", "latency (ms)"),
        ("alembic_revision", "schema revision"),
        ("alembic_head", "newest revision"),
        ("size_bytes", "size"),
        ("connections", "connections"),
        ("max_connections", "max connections"),
    ):
        if key in db:
            value = _size(db[key]) if key == "size_bytes" else str(db[key])
            summary.add_row(label, value)
    if "pool" in db:
        pool = db["pool"]
        if "size" in pool and "checkedout" in pool:
            # QueuePool.status() counts overflow from -size up: say it plainly instead.
            summary.add_row(
                "pool",
                f"{pool['class']}: size {pool['size']}, {pool['checkedout']} in use, "
                f"{pool.get('checkedin', 0)} idle, "
                f"{max(0, pool.get('overflow', 0))} overflow",
            )
        else:
            summary.add_row("pool", pool["status"])
    cache = report["cache"]
    summary.add_row("in-process cache", _size(cache.get("in_process_lru_bytes")))
    if cache.get("redis_configured"):
        reachable = cache.get("redis_reachable")
        summary.add_row("redis", f"{cache.get('redis_url')} ({'up' if reachable else 'DOWN'})")
        if reachable:
            summary.add_row("redis maxmemory-policy", str(cache.get("maxmemory_policy")))
            summary.add_row(
                "redis memory",
                f"{_size(cache.get('used_memory_bytes'))} of "
                f"{_size(cache.get('maxmemory_bytes')) if cache.get('maxmemory_bytes') else 'no limit'}",
            )
    else:
        summary.add_row("redis", "not configured")
    out.print(summary)
    if db.get("tables"):
        tables = Table(title="tables")
        tables.add_column("table")
        tables.add_column("rows", justify="right")
        tables.add_column("size", justify="right")
        for entry in db["tables"]:
            rows = f"{entry['rows']:,}" + (" (est.)" if entry.get("rows_estimated") else "")
            tables.add_row(entry["name"], rows, _size(entry.get("bytes")))
        out.print(tables)
    for problem in report["problems"]:
        out.print(f"[red]problem:[/] {problem}")
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")


# --- map ---------------------------------------------------------------------------------------


@app.command("map")
def map_command(
    ctx: typer.Context,
    world: WorldArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The PNG file to write.", show_default=False)
    ],
    center: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--center",
            help="Centre chunk CX CZ [default: the middle of the stored chunks].",
            show_default=False,
        ),
    ] = None,
    radius: Annotated[
        int | None,
        typer.Option(
            "--radius",
            "-r",
            min=0,
            max=512,
            help="Chunks around the centre [default: 16 with --center; else the whole world].",
            show_default=False,
        ),
    ] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Draw chunk borders.")] = False,
) -> None:
    """A top-down picture: one pixel per block column, coloured by its top block, shaded by height."""
    from voxeldb._map import map_frame, render_map
    from voxeldb._sample import resolve_world

    with open_db(ctx) as db:
        ref = resolve_world(db, world)
        frame = map_frame(db, ref, center, radius)
        with progress_bar("chunks") as progress:
            task = progress.add_task(f"Mapping {ref.name}", total=frame[2] * frame[3])
            info = render_map(
                db,
                ref,
                output,
                frame=frame,
                grid=grid,
                progress=lambda n: progress.advance(task, n),
            )
    out.print(
        f"Wrote {output} ({info.width}x{info.height} px): {info.chunks_present:,} of "
        f"{info.chunks_total:,} chunks present."
    )


# --- entry point -------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int = 2) -> int:
    err.print(f"voxeldb: error: {_one_line(message)}", markup=False, soft_wrap=True)
    return code


def _click_errors() -> tuple[type[Exception], type[Exception], type[Exception], type[Exception]]:
    """``(ClickException, UsageError, NoArgsIsHelpError, Abort)`` of the click typer runs on.

    Newer typer vendors click as ``typer._click``; older ones use click itself.
    """
    vendored: types.ModuleType
    try:
        from typer._click import exceptions as vendored
    except ImportError:  # pragma: no cover - typer on plain click
        vendored = click.exceptions
    return (
        vendored.ClickException,
        vendored.UsageError,
        getattr(vendored, "NoArgsIsHelpError", vendored.UsageError),
        getattr(typer, "Abort", click.Abort),
    )


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


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from voxeldb.errors import VoxelDBError

    click_error, usage_error, no_args, abort = _click_errors()
    try:
        args = _hoist_global_options(list(sys.argv[1:] if argv is None else argv))
        rv = app(args=args, prog_name="voxeldb", standalone_mode=False)
    except no_args as exc:
        ctx = getattr(exc, "ctx", None)
        out.print(ctx.get_help() if ctx is not None else "", markup=False)
        return 2
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return _fail(exc.format_message() + where, int(getattr(exc, "exit_code", 2)))  # type: ignore[attr-defined]
    except click_error as exc:
        return _fail(exc.format_message(), int(getattr(exc, "exit_code", 1)))  # type: ignore[attr-defined]
    except abort:
        return _fail("aborted", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except VoxelDBError as exc:
        return _fail(str(exc))
    except (OperationalError, InterfaceError) as exc:
        detail = str(exc.orig) if exc.orig is not None else str(exc)
        return _fail(f"cannot use the database: {detail.strip().splitlines()[0][:300]}")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    return rv if isinstance(rv, int) else 0


def main() -> None:
    """The ``voxeldb`` console script."""
    sys.exit(run())
