"""``voxeldb setup`` and ``voxeldb generate``: the schema, the sample world, bulk terrain."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from voxeldb.cli._common import (
    CommandLineError,
    WorldArg,
    err,
    note_similar_worlds,
    open_db,
    options,
    out,
    progress_bar,
)

__all__ = ["generate", "setup"]


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
        raise CommandLineError(
            "choose exactly one of --full-setup, --create-tables, --sample-data", ctx=ctx
        )
    from voxeldb.ops import DatabaseSetup

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
            "--seed", help="Terrain seed \\[default: the world's, else 0].", show_default=False
        ),
    ] = None,
    center: Annotated[
        tuple[int, int],
        typer.Option("--center", help="Centre chunk CX CZ.", show_default=True),
    ] = (0, 0),
    height: Annotated[
        int | None,
        typer.Option(
            "--height", help="Height of a new world \\[default: 384].", show_default=False
        ),
    ] = None,
    min_y: Annotated[
        int | None,
        typer.Option(
            "--min-y", help="Lowest y of a new world \\[default: -64].", show_default=False
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace/--keep",
            help="Regenerate chunks that are stored already, or keep them (a rerun resumes).",
        ),
    ] = False,
) -> None:
    """Bulk-write generated terrain around the centre; a new name creates the world.

    Commits every few dozen chunks: after Ctrl-C the same command resumes where it stopped.
    """
    from voxeldb.ops import ensure_world, generate_terrain

    side = 2 * radius + 1
    stored = 0

    def advance(n: int) -> None:
        nonlocal stored
        stored += n
        progress.advance(task, n)

    with open_db(ctx, may_create=True) as db:
        db.create_schema()
        ref, created = ensure_world(db, world, seed=seed, height=height, min_y=min_y)
        if created:
            err.print(f"Created world {ref.name!r} ({ref.id}).")
            note_similar_worlds(db, ref.name)
        try:
            with progress_bar("chunks") as progress:
                task = progress.add_task(f"Generating {ref.name}", total=side * side)
                written, seconds = generate_terrain(
                    db, ref, radius=radius, center=center, seed=seed, replace=replace,
                    progress=advance,
                )  # fmt: skip
        except KeyboardInterrupt:
            err.print(
                f"voxeldb: interrupted: {stored:,} of {side * side:,} chunks of world "
                f"{ref.name!r} are stored; run the same command again to finish.",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
    rate = written / seconds if seconds > 0 else float("inf")
    kept = side * side - written
    note = f"; {kept:,} were stored already" if kept else ""
    out.print(
        f"Wrote {written:,} chunks to world {ref.name!r} ({ref.id}) in {seconds:.2f} s: "
        f"{rate:,.0f} chunks/s{note}."
    )
