"""Block-edit planning: ``set_blocks`` edits validated, deduplicated and grouped per chunk,
then applied to locked rows inside the write transaction."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from voxeldb._summary import summarize
from voxeldb.chunks import _journal_sql as journal_sql
from voxeldb.chunks._geometry import INT32_MAX, INT32_MIN, Blocks, Key, as_coord
from voxeldb.chunks._journal import EDIT, JournalWriter, check_actor, pack_edits
from voxeldb.chunks._journal_sql import EntryRow
from voxeldb.chunks._reads import decode_rows
from voxeldb.chunks._registry import intern_states, normalize_state, state_key
from voxeldb.chunks.backends import Backend
from voxeldb.chunks.codec import encode_chunk
from voxeldb.errors import ConcurrencyError, CoordinateError, ValidationError

__all__ = ["EditPlan", "apply_edits", "edit_blocks", "plan_edits"]

_U16_MAX = 2**16 - 1
_U32_MAX = 2**32 - 1
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


class EditPlan:
    """``set_blocks`` edits validated, deduplicated and grouped per chunk (sorted)."""

    __slots__ = ("bounds", "count", "flat", "keys", "slots", "states")

    def __init__(
        self,
        *,
        count: int,
        states: list[Any],
        keys: list[Key],
        flat: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        bounds: npt.NDArray[np.intp],
    ) -> None:
        self.count = count
        self.states = states
        """Distinct normalized states; ``slots`` index into it."""
        self.keys = keys
        """The chunks touched, sorted by ``(cx, cz)``."""
        self.flat = flat
        """Flat index into a chunk array of each final edit, grouped per chunk."""
        self.slots = slots
        """The state slot of each final edit."""
        self.bounds = bounds
        """Chunk ``i``'s edits are ``[bounds[i], bounds[i + 1])``."""


def plan_edits(
    edits: Iterable[tuple[int, int, int, Any]], height: int, min_y: int
) -> EditPlan | None:
    """The plan of ``edits`` ``(x, y, z, state)`` (later edits of a block win); None if none."""
    xs: list[int] = []
    ys: list[int] = []
    zs: list[int] = []
    slots: list[int] = []
    states: list[Any] = []
    by_name: dict[str, int] = {}
    # id(obj) -> (obj kept alive, slot, a deep copy of obj as it was then)
    by_object: dict[int, tuple[Any, int, Any]] = {}
    by_key: dict[str, int] = {}
    for index, edit in enumerate(edits):
        try:
            x, y, z, state = edit
        except (TypeError, ValueError):
            raise ValidationError(
                f"edit {index} must be an (x, y, z, state) tuple, got {edit!r}"[:200],
                field="edits",
            ) from None
        xs.append(x)
        ys.append(y)
        zs.append(z)
        if type(state) is str:
            slot = by_name.get(state)
            if slot is None:
                slot = _state_slot(state, states, by_key)
                by_name[state] = slot
        else:
            cached = by_object.get(id(state))
            # The same dict may come back mutated (a generator reusing one): the memo
            # holds only while it still equals the state it was normalized from.
            if cached is None or state != cached[2]:
                slot = _state_slot(state, states, by_key)
                by_object[id(state)] = (state, slot, copy.deepcopy(state))
            else:
                slot = cached[1]
        slots.append(slot)
    if not xs:
        return None
    try:
        ax = np.array(xs)
        ay = np.array(ys)
        az = np.array(zs)
    except (OverflowError, ValueError, TypeError):
        ax = ay = az = np.array([], dtype=object)
    for arr, values, name in ((ax, xs, "x"), (ay, ys, "y"), (az, zs, "z")):
        # numpy turns [True, 5] into integers: bools must be looked for in the input. Values
        # in [2**63, 2**64) make a uint64 array, which astype(int64) would wrap around:
        # only a signed array is taken as it is.
        if arr.dtype.kind != "i" or arr.ndim != 1 or bool in set(map(type, values)):
            # Slow path only to name the offending edit precisely.
            for index, value in enumerate(values):
                try:
                    number = as_coord(value, name)
                except CoordinateError as exc:
                    raise CoordinateError(f"edit {index}: {exc}") from None
                if not _I64_MIN <= number <= _I64_MAX:
                    raise CoordinateError(
                        f"edit {index}: {name} = {number} is outside the world "
                        f"(block coordinates must lie in [-2**63, 2**63))"
                    )
            raise CoordinateError(f"edit coordinates {name} must be integers in int64 range")
    ax, ay, az = ax.astype(np.int64), ay.astype(np.int64), az.astype(np.int64)
    bad_y = (ay < min_y) | (ay >= min_y + height)
    if bad_y.any():
        index = int(np.argmax(bad_y))
        raise CoordinateError(
            f"edit {index}: y = {int(ay[index])} is outside this world's height range "
            f"[{min_y}, {min_y + height}) (min_y = {min_y}, height = {height})"
        )
    acx, acz = ax >> 4, az >> 4
    bad_c = (acx < INT32_MIN) | (acx > INT32_MAX) | (acz < INT32_MIN) | (acz > INT32_MAX)
    if bad_c.any():
        index = int(np.argmax(bad_c))
        raise CoordinateError(
            f"edit {index}: block ({int(ax[index])}, {int(ay[index])}, {int(az[index])}) "
            f"is outside the world's chunk range"
        )
    # One int64 per chunk, then one per (chunk, block): the last edit of a block wins.
    chunk_code = (acx << 32) | (acz - INT32_MIN)  # sorts as (cx, cz)
    chunks, inverse = np.unique(chunk_code, return_inverse=True)
    cells = height * 256
    flat = (ay - min_y) * 256 + (az & 15) * 16 + (ax & 15)
    code = inverse.astype(np.int64) * cells + flat
    uniq, first_rev = np.unique(code[::-1], return_index=True)
    last = len(code) - 1 - first_rev
    slot_arr = np.asarray(slots, dtype=np.int64)[last]
    bounds = np.searchsorted(uniq // cells, np.arange(len(chunks) + 1))
    keys = [(int(c >> 32), int((c & 0xFFFFFFFF) + INT32_MIN)) for c in chunks.tolist()]
    return EditPlan(
        count=len(xs),
        states=states,
        keys=keys,
        flat=uniq % cells,
        slots=slot_arr,
        bounds=bounds,
    )


def _state_slot(state: Any, states: list[Any], by_key: dict[str, int]) -> int:
    normalized = normalize_state(state)
    key = state_key(normalized)
    slot = by_key.get(key)
    if slot is None:
        slot = by_key[key] = len(states)
        states.append(normalized)
    return slot


def apply_edits(
    conn: Connection,
    backend: Backend,
    plan: EditPlan,
    shape: tuple[int, int, int],
    journal: JournalWriter | None = None,
) -> tuple[dict[Key, int], dict[Key, Blocks], dict[Key, bytes]]:
    """Run ``plan`` in the caller's write transaction: intern its states, lock and edit the
    stored chunks, create the others. The new versions, arrays (read-only) and bytes.

    With ``journal``, one ``"edit"`` entry per chunk (positions, old and new ids) is added to
    it, and :meth:`JournalWriter.finish` is called as the last statement."""
    ids = np.asarray(intern_states(conn, backend.world_id, plan.states), dtype=np.int64)
    if len(ids) and int(ids.max()) > _U32_MAX:
        raise ConcurrencyError("block-state id space exhausted (more than 2**32 states)")
    values = ids[plan.slots] if len(ids) else plan.slots
    position = {key: i for i, key in enumerate(plan.keys)}
    olds: dict[Key, Any] = {}
    if journal is not None:
        journal.reserve(len(plan.keys))

    def edited(key: Key, base: Blocks | None) -> Blocks:
        i = position[key]
        lo, hi = int(plan.bounds[i]), int(plan.bounds[i + 1])
        vals = values[lo:hi]
        need32 = len(vals) and int(vals.max()) > _U16_MAX
        if base is None:
            array = np.zeros(shape, dtype=np.uint32 if need32 else np.uint16)
        elif need32 and base.dtype == np.uint16:
            array = base.astype(np.uint32)
        else:
            array = base  # freshly decoded for this transaction: edited in place
        if journal is not None:
            olds[key] = (
                np.zeros(hi - lo, dtype=np.uint32)
                if base is None
                else base.reshape(-1)[plan.flat[lo:hi]].astype(np.uint32)
            )
        array.reshape(-1)[plan.flat[lo:hi]] = vals
        array.flags.writeable = False
        return array

    written: dict[Key, int] = {}
    arrays: dict[Key, Blocks] = {}
    encoded: dict[Key, bytes] = {}
    todo = list(plan.keys)
    while todo:
        locked = backend.lock(conn, todo)
        decoded = decode_rows(locked, shape, backend.world_id, readonly=False)
        updates = []
        for (cx, cz, _, _), base in zip(locked, decoded, strict=True):
            array = edited((cx, cz), base)
            arrays[(cx, cz)] = array
            encoded[(cx, cz)] = data = encode_chunk(array)
            updates.append((cx, cz, data, summarize(array)))
        if updates:
            written.update(backend.update(conn, updates))
        present = {(cx, cz) for cx, cz, _, _ in locked}
        absent = [key for key in todo if key not in present]
        if not absent:
            break
        inserts = []
        for key in absent:
            array = edited(key, None)
            arrays[key] = array
            encoded[key] = data = encode_chunk(array)
            inserts.append((key[0], key[1], data, summarize(array)))
        inserted = backend.insert_new(conn, inserts)
        written.update(inserted)
        # A concurrent writer created the others first: lock and edit its rows instead.
        todo = [key for key in absent if key not in inserted]
    if journal is not None:
        for i, key in enumerate(plan.keys):
            lo, hi = int(plan.bounds[i]), int(plan.bounds[i + 1])
            blob = pack_edits(plan.flat[lo:hi], olds[key], values[lo:hi])
            journal.add(EntryRow(key[0], key[1], EDIT, written.get(key), blob, None, None))
        journal.finish(conn)
    return written, arrays, encoded


def edit_blocks(
    conn: Connection,
    world_id: uuid.UUID,
    edits: Iterable[tuple[int, int, int, Any]],
    *,
    height: int,
    min_y: int,
    actor: str | None = None,
) -> tuple[int, int] | None:
    """``ChunkStore.set_blocks`` in the caller's transaction on ``conn`` (a service that edits
    blocks together with its own rows); the journal range ``(after, last]`` of the edits, or
    None when there were none. Cached copies are not refreshed: the versions keep them from
    being served."""
    from voxeldb.chunks.backends import open_backend

    plan = plan_edits(edits, height, min_y)
    if plan is None:
        return None
    backend = open_backend(conn.engine, world_id)
    journal = JournalWriter.open(conn.engine, world_id, check_actor(actor))
    apply_edits(conn, backend, plan, (height, 16, 16), journal)
    if journal is None:
        return None
    last = journal_sql.head(conn, world_id)
    return last - len(plan.keys), last
