"""``voxeldb health``: database, schema, tables, cache and pool; exit 1 when unhealthy."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from voxeldb.cli._common import options, out, require_database

__all__ = ["health"]


def _size(n: Any) -> str:
    """A byte count as people read it (the library's one formatter), ``-`` when unknown."""
    from voxeldb._text import format_size

    return format_size(n) if isinstance(n, int) else "-"


def health(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when degraded too (e.g. Redis down).")
    ] = False,
) -> None:
    """Database, schema, tables, cache and pool: exit 1 when unhealthy."""
    from voxeldb.ops import collect_health

    require_database(ctx)
    opts = options(ctx)
    redis_url = None if opts.redis_url == "memory" else opts.redis_url
    report = collect_health(opts.database_url, redis_url)
    if opts.redis_url == "memory":
        report["cache"] = {"redis_configured": False, **{
            k: v for k, v in report["cache"].items() if k == "in_process_lru_bytes"
        }}  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        _print_health(report)
    if report["status"] == "unhealthy" or (strict and report["status"] != "healthy"):
        raise typer.Exit(1)


def _print_health(report: dict[str, Any]) -> None:
    colour = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}[report["status"]]
    out.print(f"[bold {colour}]{report['status'].upper()}[/]")
    db = report["database"]
    summary = Table(show_header=False, box=None)
    summary.add_row("database", db["url"])
    summary.add_row("reachable", "yes" if db["reachable"] else "no")
    for key, label in (
        ("server_version", "server"),
        ("latency_ms", "latency (ms)"),
        ("alembic_revision", "schema revision"),
        ("alembic_head", "newest revision"),
        ("size_bytes", "size"),
        ("connections", "connections"),
        ("max_connections", "max connections"),
    ):
        if key in db:
            value = _size(db[key]) if key == "size_bytes" else str(db[key])
            summary.add_row(label, value)
    if "pool" in db:
        pool = db["pool"]
        if "size" in pool and "checkedout" in pool:
            # QueuePool.status() counts overflow from -size up: say it plainly instead.
            summary.add_row(
                "pool",
                f"{pool['class']}: size {pool['size']}, {pool['checkedout']} in use, "
                f"{pool.get('checkedin', 0)} idle, "
                f"{max(0, pool.get('overflow', 0))} overflow",
            )
        else:
            summary.add_row("pool", pool["status"])
    cache = report["cache"]
    summary.add_row("in-process cache", _size(cache.get("in_process_lru_bytes")))
    if cache.get("redis_configured"):
        reachable = cache.get("redis_reachable")
        summary.add_row("redis", f"{cache.get('redis_url')} ({'up' if reachable else 'DOWN'})")
        if reachable:
            summary.add_row("redis maxmemory-policy", str(cache.get("maxmemory_policy")))
            summary.add_row(
                "redis memory",
                f"{_size(cache.get('used_memory_bytes'))} of "
                f"{_size(cache.get('maxmemory_bytes')) if cache.get('maxmemory_bytes') else 'no limit'}",
            )
    else:
        summary.add_row("redis", "not configured")
    out.print(summary)
    if db.get("tables"):
        tables = Table(title="tables")
        tables.add_column("table")
        tables.add_column("rows", justify="right")
        tables.add_column("size", justify="right")
        for entry in db["tables"]:
            rows = f"{entry['rows']:,}" + (" (est.)" if entry.get("rows_estimated") else "")
            tables.add_row(entry["name"], rows, _size(entry.get("bytes")))
        out.print(tables)
    for problem in report["problems"]:
        out.print(f"[red]problem:[/] {problem}")
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")
