"""``voxeldb import anvil`` and ``voxeldb import luanti``: real worlds into a voxeldb world."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voxeldb.cli._common import CommandGroup, err, open_db, out, progress_bar

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["import_app"]

import_app = typer.Typer(
    help="Import a Minecraft Java (Anvil) or Luanti (Minetest) world.",
    cls=CommandGroup,
    no_args_is_help=True,
)

WorldDir = Annotated[
    Path,
    typer.Argument(help="The game's world directory.", show_default=False),
]
WorldName = Annotated[
    str,
    typer.Option(
        "--world", help="The voxeldb world to import into (created if needed).", show_default=False
    ),
]
Replace = Annotated[
    bool,
    typer.Option("--replace", help="Import again the chunks an earlier run imported already."),
]
MAX_SHOWN = 20
"""Damaged chunks named one by one; after that only counted."""


class _Bar:
    """``ImportProgress`` drawn as one rich bar; damaged chunks are printed above it."""

    def __init__(self, progress: Progress, what: str) -> None:
        self.progress, self.what = progress, what
        self.task: Any = None
        self.shown = 0

    def started(self, total: int, unit: str) -> None:
        self.task = self.progress.add_task(f"{self.what} {unit}", total=total)

    def advanced(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def damaged(self, message: str) -> None:
        self.shown += 1
        if self.shown <= MAX_SHOWN:
            self.progress.console.print(f"skipped damaged {message}", markup=False)


def _run(ctx: typer.Context, source: str, world_dir: Path, world: str, replace: bool) -> None:
    from voxeldb.ops import run_import

    with open_db(ctx) as db, progress_bar("chunks") as bar:
        report = run_import(
            db, source, world_dir, world, replace=replace, progress=_Bar(bar, "Importing")
        )
    if report.damaged > MAX_SHOWN:
        err.print(f"... and {report.damaged - MAX_SHOWN:,} more damaged chunks", markup=False)
    notes = []
    if report.kept:
        notes.append(f"{report.kept:,} already there (kept; --replace imports them again)")
    if report.not_full:
        notes.append(f"{report.not_full:,} not fully generated (skipped)")
    if report.not_generated:
        notes.append(f"{report.not_generated:,} MapBlocks not generated (skipped)")
    if report.damaged:
        notes.append(f"{report.damaged:,} damaged (skipped)")
    tail = f"; {', '.join(notes)}" if notes else ""
    verb = "new world" if report.created else "world"
    out.print(
        f"Imported {report.imported:,} chunks into {verb} {report.world_name!r} "
        f"({report.world_id}, y {report.min_y} to {report.min_y + report.height - 1}) in "
        f"{report.seconds:.1f} s{tail}.",
        markup=False,
    )


@import_app.command("anvil")
def import_anvil(
    ctx: typer.Context, world_dir: WorldDir, world: WorldName, replace: Replace = False
) -> None:
    """A Minecraft Java world (1.18 or newer): its region/*.mca files."""
    _run(ctx, "anvil", world_dir, world, replace)


@import_app.command("luanti")
def import_luanti(
    ctx: typer.Context, world_dir: WorldDir, world: WorldName, replace: Replace = False
) -> None:
    """A Luanti (Minetest) world: map.sqlite, or PostgreSQL as world.mt says."""
    _run(ctx, "luanti", world_dir, world, replace)
