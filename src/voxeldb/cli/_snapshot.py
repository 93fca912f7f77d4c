"""``voxeldb snapshot create`` and ``voxeldb snapshot restore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxeldb.cli._common import (
    CommandGroup,
    WorldArg,
    find_world,
    options,
    out,
    progress_bar,
    require_database,
)

__all__ = ["snapshot_app"]

snapshot_app = typer.Typer(
    help="World snapshots: one portable file per world, restorable on either backend.",
    cls=CommandGroup,
    no_args_is_help=True,
)


@snapshot_app.command("create")
def snapshot_create(
    ctx: typer.Context,
    world: WorldArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Snapshot file (or directory) \\[default: ./<name>-<UTC time>.vxsnap].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write one portable, checksummed file holding a world."""
    from voxeldb.ops import DatabaseSetup, read_manifest

    require_database(ctx)
    opts = options(ctx)
    with DatabaseSetup(opts.database_url, cache=opts.redis_url) as db_setup:
        ref = find_world(db_setup.db, world)
        with progress_bar("chunks") as progress:
            task = progress.add_task(f"Snapshot of {ref.name}", total=None)
            path = db_setup.create_world_snapshot(
                ref.id, output, progress=lambda n: progress.update(task, completed=n)
            )
            progress.update(task, total=progress.tasks[0].completed)
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
    match_users_by_email: Annotated[
        bool,
        typer.Option(
            "--match-users-by-email",
            help="A snapshot user whose e-mail belongs to an existing user is that user "
            "(default: refused).",
        ),
    ] = False,
) -> None:
    """Restore a world from a snapshot (made on either backend); chunks come back byte-identical."""
    from voxeldb.ops import DatabaseSetup, read_manifest

    require_database(ctx)
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
            match_users_by_email=match_users_by_email,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    name = as_name or manifest["world"]["name"]
    out.print(f"Restored world {name!r} as {world_id} from {file}.")
