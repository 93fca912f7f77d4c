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
    since: Annotated[
        int | None,
        typer.Option(
            "--since",
            metavar="SEQ",
            min=0,
            help="An increment: only the chunks changed (and deleted) after journal seq SEQ, "
            "e.g. the head the previous file printed.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write one portable, checksummed file holding a world (or, with --since, what changed)."""
    from voxeldb.ops import DatabaseSetup

    require_database(ctx)
    opts = options(ctx)
    with DatabaseSetup(opts.database_url, cache=opts.redis_url) as db_setup:
        ref = find_world(db_setup.db, world)
        with progress_bar("chunks") as progress:
            what = "Snapshot" if since is None else "Increment"
            task = progress.add_task(f"{what} of {ref.name}", total=None)
            info = db_setup.snapshot_info(
                ref.id, output, since=since, progress=lambda n: progress.update(task, completed=n)
            )
            progress.update(task, total=progress.tasks[0].completed)
    path, counts = info.path, info.counts
    if info.since is None:
        out.print(
            f"Wrote {path} ({path.stat().st_size:,} bytes): world {ref.name!r} ({ref.id}), "
            f"{counts.get('world_chunks', 0):,} chunks, {counts.get('characters', 0)} characters; "
            f"journal head {info.journal_head}."
        )
    else:
        out.print(
            f"Wrote {path} ({path.stat().st_size:,} bytes): increment of world {ref.name!r} "
            f"({ref.id}), journal seq {info.since} to {info.journal_head}: "
            f"{counts.get('world_chunks', 0):,} chunks changed, "
            f"{counts.get('deleted_chunks', 0):,} deleted."
        )


@snapshot_app.command("restore")
def snapshot_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The snapshot file.", show_default=False)],
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as-name",
            help="Restore under this world name (an increment: apply it to this world).",
            show_default=False,
        ),
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
    """Restore a world from a snapshot (made on either backend); chunks come back byte-identical.

    An increment (snapshot create --since) is applied on top of the world restored before.
    """
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
    increment = manifest.get("increment")
    if increment is None:
        out.print(f"Restored world {name!r} as {world_id} from {file}.")
    else:
        out.print(
            f"Applied increment {file} (journal seq {increment['since']} to "
            f"{increment['head']}: {manifest['counts']['world_chunks']:,} chunks, "
            f"{manifest['counts'].get('deleted_chunks', 0):,} deleted) to world {name!r} "
            f"({world_id})."
        )
