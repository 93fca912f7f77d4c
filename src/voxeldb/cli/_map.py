"""``voxeldb map``: a top-down picture of a world, from its chunk summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from voxeldb.cli._common import WorldArg, find_world, open_db, options, out, progress_bar
from voxeldb.cli._map_fast import plain_url, report_lines, single_blas_thread

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
    single_blas_thread()
    from voxeldb.ops import draw_map, map_frame, open_sqlite_map, render_map

    # A plain SQLite file is read directly (no ORM, SQLAlchemy or Redis to import; run from
    # the program, ``_map_fast`` takes this path before typer is even imported); anything
    # else, or a world it cannot find, goes through the store, which also words the errors.
    url = plain_url(options(ctx).database_url)
    source = None if rebuild_summaries else open_sqlite_map(url, world)
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
    for line in report_lines(info):
        out.print(line, markup=False)


def _fast_frame(
    source: SQLiteMapSource, center: tuple[int, int] | None, radius: int | None
) -> tuple[int, int, int, int]:
    from voxeldb.ops import map_frame_from

    return map_frame_from(source.bounds, center, radius)
