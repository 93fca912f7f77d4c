"""``voxeldb map``: a top-down PNG of a world."""

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
            )
    out.print(
        f"Wrote {info.path} ({info.width}x{info.height} px): {info.chunks_present:,} of "
        f"{info.chunks_total:,} chunks present."
    )
