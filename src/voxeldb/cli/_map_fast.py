"""``voxeldb map`` of a plain SQLite file without typer, rich or pydantic.

For a map of 1,024 columns (0.3 s for minetestmapper, 0.05 to 0.08 s of drawing here),
typer 0.29 and rich took 0.15 s to import and typer's parsing another 0.1 to 0.2 s: it
imports pydantic and builds a ``TypeAdapter`` for every parameter. The common case (a
plain ``sqlite:///`` file that exists, a world it holds, the options below) is parsed here
by hand and drawn through the SQLite fast path (``voxeldb.ops.open_sqlite_map``). Anything
else returns None and the typer command (``_map.map_command``) runs instead: help,
``--rebuild-summaries``, another database, a world the file does not hold, and every
mistake in the arguments, so that typer alone words the usage errors.

It runs before ``voxeldb.cli._app`` (typer) is imported: ``voxeldb.cli.main`` offers it
the arguments first.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxeldb.ops import MapInfo, SQLiteMapSource

__all__ = ["fast_map", "plain_url", "report_lines", "single_blas_thread"]

_GLOBAL = ("--database-url", "--redis-url")
_FLAGS = {"--grid": ("grid", True), "--no-grid": ("grid", False),
          "--legend": ("legend", True), "--no-legend": ("legend", False)}  # fmt: skip
_VALUED = {"-o": "output", "--output": "output", "--colors": "colors", "-r": "radius",
           "--radius": "radius", "--center": "center"}  # fmt: skip
_MAX_RADIUS = 512  # as the typer option says (ops._map.MAX_RADIUS)


@dataclass
class _Args:
    world: str | None = None
    output: str | None = None
    center: tuple[int, int] | None = None
    radius: int | None = None
    grid: bool = False
    colors: str | None = None
    legend: bool = True
    database_url: str | None = None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _parse(argv: list[str]) -> _Args | None:
    """The arguments of ``[global options] map WORLD [options]``, or None for typer."""
    args = _Args()
    rest: list[str] = []
    i = 0
    while i < len(argv):  # the global options may stand before or after the command
        token = argv[i]
        name, eq, value = token.partition("=")
        if name in _GLOBAL and eq:
            i += 1
        elif token in _GLOBAL and i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        else:
            rest.append(token)
            i += 1
            continue
        if name == "--database-url":
            args.database_url = value
    if not rest or rest[0] != "map":
        return None
    i = 1
    while i < len(rest):
        token = rest[i]
        i += 1
        if token in _FLAGS:
            field, flag = _FLAGS[token]
            setattr(args, field, flag)
            continue
        name, eq, value = token.partition("=")
        if name.startswith("--") and eq and name in _VALUED and name != "--center":
            token, values = name, [value]
        elif token in _VALUED:
            count = 2 if token == "--center" else 1
            values = rest[i : i + count]
            if len(values) < count:
                return None
            i += count
        elif token.startswith("-") or args.world is not None:
            return None  # help, --rebuild-summaries, "--", a mistake: typer's to say
        else:
            args.world = token
            continue
        field = _VALUED[token]
        if field == "center":
            cx, cz = _int(values[0]), _int(values[1])
            if cx is None or cz is None:
                return None
            args.center = (cx, cz)
        elif field == "radius":
            radius = _int(values[0])
            if radius is None or not 0 <= radius <= _MAX_RADIUS:
                return None
            args.radius = radius
        else:
            setattr(args, field, values[0])
    if args.world is None or args.output is None:
        return None
    return args


def plain_url(database_url: str | None) -> str | None:
    """The database URL when it is known without reading settings: the option, else
    ``DATABASE_URL``, else the default when no ``.env`` file could name another."""
    url = database_url or os.environ.get("DATABASE_URL")
    if url:
        return url
    if os.path.exists(".env"):
        return None
    return "sqlite:///voxeldb.sqlite3"


def single_blas_thread() -> None:
    """Let numpy's OpenBLAS start one thread, unless the environment says otherwise.

    A map does no linear algebra, but importing numpy starts a BLAS thread per core: 70 of
    its 210 ms here. Only numpy imported after this call is affected.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def report_lines(info: MapInfo) -> list[str]:
    """What the command prints on stdout after drawing."""
    lines = [
        f"Wrote {info.path} ({info.width}x{info.height} px, north {info.north} at the top): "
        f"{info.chunks_present:,} of {info.chunks_total:,} chunks present."
    ]
    if info.unknown_columns:
        names = ", ".join(info.unknown_names[:5]) + (", ..." if len(info.unknown_names) > 5 else "")
        lines.append(
            f"{info.unknown_columns:,} columns had a top block with no colour (fallback "
            f"colours; add them with --colors FILE): {names}"
        )
    else:
        lines.append("0 columns used a fallback colour.")
    if info.decoded_chunks:
        done = (
            f"their summaries are now stored ({info.rebuilt_chunks:,})"
            if info.rebuilt_chunks
            else "--rebuild-summaries stores them"
        )
        lines.append(
            f"{info.decoded_chunks:,} chunks had no current summary and were decoded; {done}."
        )
    return lines


def fast_map(argv: list[str]) -> int | None:
    """Run ``voxeldb map`` for ``argv`` (the program's arguments) and return its exit status,
    or None when the typer command must run instead (nothing was done then)."""
    args = _parse(argv)
    if args is None:
        return None
    single_blas_thread()
    from voxeldb.ops import open_sqlite_map

    source = open_sqlite_map(plain_url(args.database_url), args.world or "")
    if source is None:
        return None
    try:
        return _draw(args, source)
    except KeyboardInterrupt:
        print("voxeldb: interrupted", file=sys.stderr)
        return 130
    finally:
        source.close()


def _draw(args: _Args, source: SQLiteMapSource) -> int:
    from voxeldb.errors import VoxelDBError
    from voxeldb.ops import draw_map, map_frame_from

    try:
        frame = map_frame_from(source.bounds, args.center, args.radius)
        total = frame[2] * frame[3]
        # A progress bar only where someone watches: rich costs more to import than a map of a
        # thousand chunks takes to draw.
        if sys.stderr.isatty():
            from voxeldb.cli._common import progress_bar

            with progress_bar("chunks") as progress:
                task = progress.add_task(f"Mapping {source.world.name}", total=total)
                info = draw_map(
                    source, source.world, args.output or "", frame=frame, grid=args.grid,
                    progress=lambda n: progress.advance(task, n), colors=args.colors,
                    legend=args.legend,
                )  # fmt: skip
        else:
            info = draw_map(
                source, source.world, args.output or "", frame=frame, grid=args.grid,
                colors=args.colors, legend=args.legend,
            )  # fmt: skip
    except (VoxelDBError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:  # fmt: skip
        # As voxeldb.cli._app words these: one line on stderr, exit status 2.
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename:
            message = f"{exc.strerror or exc}: {exc.filename}"
        print(f"voxeldb: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(info)), flush=True)
    return 0
