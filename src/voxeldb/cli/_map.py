"""``voxeldb map``: a top-down picture of a world, from its chunk summaries."""

from __future__ import annotations

from typing import Annotated

import typer

from voxeldb.cli._common import WorldArg, find_world, open_db, out, progress_bar

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
    from voxeldb.ops import map_frame, render_map

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
