"""``voxeldb map``: a top-down picture of a world, from its chunk summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from voxeldb.cli._common import WorldArg, find_world, open_db, options, out, progress_bar

if TYPE_CHECKING:
    from voxeldb.ops import SQLiteMapSource

__all__ = ["map_command"]


def map_command(
    ctx: typer.Context,
    world: WorldArg,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The image to write: .png, .jpg, .webp, .bmp, .gif or .tif; a directory gets "
            "<world>.png.",
            show_default=False,
        ),
    ],
    center: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--center",
            help="Centre chunk CX CZ \\[default: the middle of the stored chunks].",
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
            help="Chunks around the centre \\[default: 16 with --center; else the whole world].",
            show_default=False,
        ),
    ] = None,
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Draw chunk borders.")] = False,
    colors: Annotated[
        str | None,
        typer.Option(
            "--colors",
            metavar="FILE",
            help="Block colours in minetestmapper's colors.txt format ('name r g b [a]' "
            "lines); they win over the built-in tables.",
            show_default=False,
        ),
    ] = None,
    legend: Annotated[
        bool,
        typer.Option("--legend/--no-legend", help="A strip with north, coordinates and scale."),
    ] = True,
    rebuild_summaries: Annotated[
        bool,
        typer.Option(
            "--rebuild-summaries",
            help="Store the summaries of chunks that had none (written before summaries "
            "existed, or by the ORM or a restore), so later maps need not decode them.",
        ),
    ] = False,
) -> None:
    """A top-down picture: one pixel per block column, coloured by its top block, shaded by height."""
    from voxeldb.ops import draw_map, map_frame, open_sqlite_map, render_map

    # A plain SQLite file is read directly (no ORM, SQLAlchemy or Redis to import: the
    # whole command then costs about what minetestmapper does); anything else, or a world
    # it cannot find, goes through the store, which also words the errors.
    source = None if rebuild_summaries else open_sqlite_map(_plain_url(ctx), world)
    if source is not None:
        try:
            frame = _fast_frame(source, center, radius)
            with progress_bar("chunks") as progress:
                task = progress.add_task(f"Mapping {source.world.name}", total=frame[2] * frame[3])
                info = draw_map(
                    source,
                    source.world,
                    output,
                    frame=frame,
                    grid=grid,
                    progress=lambda n: progress.advance(task, n),
                    colors=colors,
                    legend=legend,
                )
        finally:
            source.close()
    else:
        with open_db(ctx) as db:
            ref = find_world(db, world)
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
                    colors=colors,
                    legend=legend,
                    rebuild_summaries=rebuild_summaries,
                )
    out.print(
        f"Wrote {info.path} ({info.width}x{info.height} px, north {info.north} at the top): "
        f"{info.chunks_present:,} of {info.chunks_total:,} chunks present."
    )
    if info.unknown_columns:
        names = ", ".join(info.unknown_names[:5]) + (", ..." if len(info.unknown_names) > 5 else "")
        out.print(
            f"{info.unknown_columns:,} columns had a top block with no colour (fallback "
            f"colours; add them with --colors FILE): {names}"
        )
    else:
        out.print("0 columns used a fallback colour.")
    if info.decoded_chunks:
        done = (
            f"their summaries are now stored ({info.rebuilt_chunks:,})"
            if info.rebuilt_chunks
            else "--rebuild-summaries stores them"
        )
        out.print(
            f"{info.decoded_chunks:,} chunks had no current summary and were decoded; {done}."
        )


def _plain_url(ctx: typer.Context) -> str | None:
    """The database URL when it is known without reading settings: the option, else
    ``DATABASE_URL``, else the default when no ``.env`` file could name another."""
    import os

    url = options(ctx).database_url or os.environ.get("DATABASE_URL")
    if url:
        return url
    if os.path.exists(".env"):
        return None
    return "sqlite:///voxeldb.sqlite3"


def _fast_frame(
    source: SQLiteMapSource, center: tuple[int, int] | None, radius: int | None
) -> tuple[int, int, int, int]:
    from voxeldb.ops import map_frame_from

    return map_frame_from(source.bounds, center, radius)
