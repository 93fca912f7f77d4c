"""``voxeldb history``, ``rollback``, ``watch`` and ``journal prune``: the world journal.

Durations (``--since 2h``, ``--older-than 30d``) are read by :func:`parse_duration`, the one
place that knows their form. The journal itself is ``voxeldb.chunks`` (``ChunkStore.changes``,
``watch``, ``rollback``; ``Database.prune_journal``), imported when a command runs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voxeldb.cli._common import (
    CommandGroup,
    CommandLineError,
    WorldArg,
    err,
    find_world,
    open_db,
    out,
)

if TYPE_CHECKING:
    from voxeldb.chunks import Change

__all__ = [
    "change_json",
    "change_line",
    "history",
    "journal_app",
    "parse_duration",
    "rollback",
    "watch",
]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_UNIT_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_MAX_DAYS = 100 * 366


def parse_duration(text: str, option: str = "--since") -> dt.timedelta:
    """``30d``, ``2h``, ``15m``, ``90s``, ``1w`` as a timedelta; anything else (or nothing,
    or past a century) is a :class:`CommandLineError` naming ``option``: one line, exit 2."""
    match = _DURATION.match(text)
    if match is None:
        raise CommandLineError(
            f"invalid value for {option}: {text!r} is not a duration (a whole number and a unit: "
            "90s, 15m, 2h, 30d or 1w)"
        )
    amount, unit = int(match.group(1)), match.group(2)
    try:
        delta = dt.timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        delta = dt.timedelta.max
    if delta > dt.timedelta(days=_MAX_DAYS):
        raise CommandLineError(f"invalid value for {option}: {text!r} is longer than a century")
    return delta


def _describe(text: str) -> str:
    match = _DURATION.match(text)
    assert match is not None
    amount, unit = int(match.group(1)), match.group(2)
    return f"{amount} {_UNIT_NAMES[unit]}{'' if amount == 1 else 's'}"


_AreaOption = Annotated[
    tuple[int, int, int, int] | None,
    typer.Option(
        "--area",
        metavar="CX0 CZ0 CX1 CZ1",
        help="Only chunks in this inclusive rectangle CX0 CZ0 CX1 CZ1.",
        show_default=False,
    ),
]
_ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        metavar="ACTOR",
        help="Only changes made by this actor (exactly).",
        show_default=False,
    ),
]
_SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION",
        help="Only changes of the last DURATION: 90s, 15m, 2h, 30d, 1w.",
        show_default=False,
    ),
]


def _area(area: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
    if area is None:
        return None
    cx0, cz0, cx1, cz1 = area
    return (min(cx0, cx1), min(cz0, cz1), max(cx0, cx1), max(cz0, cz1))


def _start(since: str | None) -> dt.datetime | None:
    if since is None:
        return None
    return dt.datetime.now(dt.UTC) - parse_duration(since, "--since")


def _iso(at: dt.datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).isoformat()


def change_json(change: Change) -> dict[str, Any]:
    """One change as the JSON object ``--json`` prints."""
    return {
        "seq": change.seq,
        "cx": change.cx,
        "cz": change.cz,
        "kind": change.kind,
        "version": change.version,
        "actor": change.actor,
        "at": _iso(change.at),
        "blocks": [
            {"x": b.x, "y": b.y, "z": b.z, "old": b.old, "new": b.new} for b in change.blocks
        ],
    }


def _state(state: Any) -> str:
    if isinstance(state, dict) and set(state) == {"type"}:
        return str(state["type"])
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def change_line(change: Change, *, max_blocks: int = 3) -> str:
    """One change as a line of text: seq, time, kind, chunk, version, actor, blocks."""
    at = change.at if change.at.tzinfo else change.at.replace(tzinfo=dt.UTC)
    parts = [
        f"#{change.seq}",
        at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z",
        f"{change.kind:<6}",
        f"chunk ({change.cx}, {change.cz})",
        f"by {change.actor}" if change.actor is not None else "by -",
    ]
    if change.kind == "edit":
        n = len(change.blocks)
        shown = ", ".join(
            f"({b.x}, {b.y}, {b.z}) {_state(b.old)} -> {_state(b.new)}"
            for b in change.blocks[:max_blocks]
        )
        more = f", ... {n - max_blocks} more" if n > max_blocks else ""
        parts.append(f"{n} block{'' if n == 1 else 's'}: {shown}{more}")
    return "  ".join(parts)


def _emit(change: Change, as_json: bool) -> None:
    if as_json:
        line = json.dumps(change_json(change), separators=(",", ":"), ensure_ascii=False)
    else:
        line = change_line(change)
    sys.stdout.write(line + "\n")


def history(
    ctx: typer.Context,
    world: WorldArg,
    actor: _ActorOption = None,
    since: _SinceOption = None,
    area: _AreaOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per line: seq, cx, cz, kind, version, actor, at, blocks.",
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            metavar="N",
            help="At most N changes (the oldest first).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The world's journal: every committed chunk change, oldest first."""
    start = _start(since)
    with open_db(ctx) as db:
        ref = find_world(db, world)
        n = 0
        for change in db.chunks(ref.id).changes(
            0, area=_area(area), actor=actor, start=start, limit=limit
        ):
            _emit(change, as_json)
            n += 1
        sys.stdout.flush()
    if not as_json:
        err.print(f"{n:,} change{'' if n == 1 else 's'} of world {ref.name!r}.", markup=False)


ROLLBACK_ACTOR = "voxeldb rollback"
"""The actor ``voxeldb rollback`` journals its undo under."""


def rollback(
    ctx: typer.Context,
    world: WorldArg,
    actor: _ActorOption = None,
    since: _SinceOption = None,
    area: _AreaOption = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Report what would be undone; write nothing.")
    ] = False,
) -> None:
    """Undo the changes matching every filter given (at least one), newest first.

    A block goes back only where it still holds what the change wrote; other blocks are
    conflicts, left alone and counted. The undo is journaled like any write.
    """
    if actor is None and since is None and area is None:
        raise CommandLineError(
            "rollback needs at least one filter (--actor, --since or --area): it never undoes a "
            "whole world",
            ctx=ctx,
        )
    start = _start(since)
    with open_db(ctx) as db:
        ref = find_world(db, world)
        report = db.chunks(ref.id, actor=ROLLBACK_ACTOR).rollback(
            actor=actor, area=_area(area), start=start, preview=preview
        )
    what = [f"actor {actor!r}"] if actor is not None else []
    if since is not None:
        what.append(f"the last {_describe(since)}")
    if area is not None:
        what.append("area ({}, {})..({}, {})".format(*_area(area) or area))
    verb = "Would restore" if preview else "Restored"
    out.print(
        f"{verb} {report.blocks:,} block{'' if report.blocks == 1 else 's'} in "
        f"{report.chunks:,} chunk{'' if report.chunks == 1 else 's'} of world {ref.name!r} "
        f"({', '.join(what)}); {report.conflicts:,} conflict"
        f"{'' if report.conflicts == 1 else 's'} left alone."
        + (" Nothing was written (--preview)." if preview else ""),
        markup=False,
    )


def watch(
    ctx: typer.Context,
    world: WorldArg,
    area: _AreaOption = None,
    since_seq: Annotated[
        int | None,
        typer.Option(
            "--since-seq",
            min=0,
            metavar="SEQ",
            help="Start after this seq (the changes since are printed first) \\[default: the head].",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.0,
            metavar="SECONDS",
            help="Stop after this many seconds with nothing new \\[default: never; Ctrl-C stops].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, as history --json.")
    ] = False,
) -> None:
    """Print the world's changes as they commit, until Ctrl-C (or --timeout seconds idle)."""
    with open_db(ctx) as db:
        ref = find_world(db, world)
        store = db.chunks(ref.id)
        start = store.head() if since_seq is None else since_seq
        err.print(f"Watching world {ref.name!r} after #{start} (Ctrl-C stops).", markup=False)
        last = start
        try:
            for change in store.watch(start, area=_area(area), timeout=timeout):
                _emit(change, as_json)
                sys.stdout.flush()
                last = change.seq
        except KeyboardInterrupt:
            err.print(f"voxeldb: stopped after #{last}", markup=False)
            raise typer.Exit(130) from None
    idle = "" if timeout is None else f": nothing new for {timeout:g} s"
    err.print(f"Stopped after #{last}{idle}.", markup=False)


journal_app = typer.Typer(
    help="The world journal's housekeeping.", cls=CommandGroup, no_args_is_help=True
)


@journal_app.command("prune")
def journal_prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Delete the entries older than this: 90s, 15m, 2h, 30d, 1w.",
            show_default=False,
        ),
    ],
    world: Annotated[
        str | None,
        typer.Option(
            "--world",
            metavar="WORLD",
            help="Only this world \\[default: every world].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete old journal entries (chunks are untouched; pruned history cannot be rolled back)."""
    delta = parse_duration(older_than, "--older-than")
    with open_db(ctx) as db:
        ref = find_world(db, world) if world is not None else None
        n = db.prune_journal(older_than=delta, world_id=None if ref is None else ref.id)
    where = f"world {ref.name!r}" if ref is not None else "every world"
    out.print(
        f"Pruned {n:,} journal entr{'y' if n == 1 else 'ies'} older than "
        f"{_describe(older_than)} ({where}).",
        markup=False,
    )
