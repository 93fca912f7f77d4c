"""Reading chunk summaries for a rectangle, decoding the chunks whose summary is missing.

One query reads ``(cx, cz, version, summary)`` of the rectangle. A summary that is NULL or
sealed with another version than the row's (the chunk was written by something that does not
summarize, such as the ORM or a snapshot restore) does not count: those chunks are read and
decoded, ``batch`` at a time, and summarized here. With ``rebuild=True`` those summaries are
written back, each only if the row still has the version it was made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, select, update

from voxeldb._summary import Summaries, open_summary, summaries_from_bodies, summarize
from voxeldb.chunks._geometry import Key, Rect
from voxeldb.chunks._reads import decode_rows
from voxeldb.chunks._schema import world_chunks_table as _wc
from voxeldb.chunks.backends import Backend

__all__ = ["SummaryRead", "read_summaries"]

DECODE_BATCH = 64
"""Chunks decoded at a time for missing summaries (64 chunks of 384 blocks: ~12 MiB)."""


@dataclass(frozen=True)
class SummaryRead:
    """The summaries of the stored chunks of a rectangle.

    ``keys[i]`` is described by ``summaries.*[i]``. ``decoded`` counts the chunks whose
    stored summary was missing or stale (they were decoded); ``rebuilt`` those of them whose
    summary was written back.
    """

    keys: list[Key]
    summaries: Summaries
    decoded: int
    rebuilt: int


def read_summaries(
    backend: Backend, rect: Rect, shape: tuple[int, int, int], *, rebuild: bool = False
) -> SummaryRead:
    x0, z0, x1, z1 = rect
    c = _wc.c
    query = select(c.chunk_x, c.chunk_z, c.version, c.summary).where(
        c.world_id == backend.world_id,
        c.chunk_x.between(x0, x1),
        c.chunk_z.between(z0, z1),
    )
    keys: list[Key] = []
    bodies: list[bytes] = []
    stale: dict[Key, int] = {}
    with backend.read_connection() as conn:
        for cx, cz, version, stored in conn.execute(query):
            body = open_summary(stored, version)
            key = (int(cx), int(cz))
            if body is None:
                stale[key] = len(keys)
                bodies.append(b"")
            else:
                bodies.append(body)
            keys.append(key)
        made: list[tuple[int, int, int, bytes]] = []
        wanted = list(stale)
        for start in range(0, len(wanted), DECODE_BATCH):
            rows = backend.data(conn, wanted[start : start + DECODE_BATCH])
            for (cx, cz, version, _), array in zip(
                rows, decode_rows(rows, shape, backend.world_id), strict=True
            ):
                body = summarize(array)
                bodies[stale[(cx, cz)]] = body
                made.append((cx, cz, version, body))
    # A chunk deleted between the two reads has no summary: leave it out.
    present = [i for i, b in enumerate(bodies) if b]
    if len(present) < len(bodies):
        keys = [keys[i] for i in present]
        bodies = [bodies[i] for i in present]
    rebuilt = _write_back(backend, made) if rebuild and made else 0
    return SummaryRead(keys, summaries_from_bodies(bodies), len(made), rebuilt)


def _write_back(backend: Backend, made: Sequence[tuple[int, int, int, bytes]]) -> int:
    """Store summaries made from rows at known versions; a row written since keeps its own."""
    from voxeldb._summary import seal_summary

    c = _wc.c
    statement = (
        update(_wc)
        .where(
            and_(
                c.world_id == backend.world_id,
                c.chunk_x == bindparam("cx"),
                c.chunk_z == bindparam("cz"),
                c.version == bindparam("v"),
            )
        )
        .values(summary=bindparam("s"))
    )
    params = [
        {"cx": cx, "cz": cz, "v": version, "s": seal_summary(body, version)}
        for cx, cz, version, body in made
    ]

    def work(conn: Connection) -> int:
        conn.execute(statement, params)
        return len(params)

    return backend.write(work)
