"""``voxeldb migrate``: copy a whole database between SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voxeldb.cli._common import out, progress_bar

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["migrate"]


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
    from voxeldb.meta import Base
    from voxeldb.ops import transfer_database

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
