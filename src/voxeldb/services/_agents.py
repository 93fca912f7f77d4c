"""AI agents: their activities and the world evolution they cause."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxeldb._time import utcnow
from voxeldb.chunks import edit_blocks, world_compression, world_shape
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import AIAgent, AIAgentActivity, World, WorldEvolutionLog, write_lock
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._permissions import require_permission
from voxeldb.services._validation import AgentActivityInput, check_json_object

__all__ = [
    "RECENT_IMPACTS",
    "agent_named",
    "create_agent",
    "lock_world",
    "record_evolution",
    "run_agent_activity",
]


def create_agent(
    agent_name: str,
    agent_type: str = "generic",
    configuration: dict[str, Any] | None = None,
    *,
    session: Session | None = None,
) -> AIAgent:
    """Register an AI agent under a unique name."""
    try:
        data = validated(
            AgentActivityInput, agent_name=agent_name, activity_type=agent_type, data={}
        )
    except ValidationError as exc:
        if exc.field != "activity_type":
            raise
        # Checked as an activity type, but this function's argument is agent_type.
        message = str(exc).replace("activity_type", "agent_type", 1)
        raise ValidationError(message, field="agent_type") from None
    try:
        config = check_json_object(
            configuration if configuration is not None else {}, "configuration"
        )
    except ValueError as exc:
        raise ValidationError(str(exc), field="configuration") from None
    with session_scope(session, write=True) as s:
        if s.scalar(select(AIAgent.id).where(AIAgent.agent_name == data.agent_name)) is not None:
            raise ValidationError(
                f"agent_name: an agent named {data.agent_name!r} exists", field="agent_name"
            )
        agent = AIAgent(
            agent_name=data.agent_name, agent_type=data.activity_type, configuration=config
        )
        s.add(agent)
    return agent


RECENT_IMPACTS = 20
"""How many activities ``World.evolution_state["recent"]`` keeps."""


def lock_world(s: Session, world_id: uuid.UUID) -> World:
    """The world, read again and locked until the transaction ends (both backends)."""
    write_lock(s)
    world = s.get(World, world_id, with_for_update=True, populate_existing=True)
    if world is None:
        raise UnknownIdError(f"world_id: no world {world_id}", field="world_id")
    return world


def agent_named(s: Session, agent_name: str) -> AIAgent:
    agent = s.scalar(select(AIAgent).where(AIAgent.agent_name == agent_name))
    if agent is None:
        raise UnknownIdError(f"agent_name: no agent {agent_name!r}", field="agent_name")
    return agent


def record_evolution(
    s: Session,
    agent: AIAgent,
    world: World,
    activity_type: str,
    data: dict[str, Any],
    impact: float,
) -> tuple[AIAgentActivity, WorldEvolutionLog]:
    """The activity, its evolution-log entry, and the world's summary and version, in ``s``.

    ``world`` must be locked (:func:`lock_world`): the summary is read, changed and written.
    """
    now = utcnow()
    activity = AIAgentActivity(
        id=uuid.uuid4(),
        agent_id=agent.id,
        world_id=world.id,
        activity_type=activity_type,
        activity_data=data,
        results={"status": "completed"},
        status="completed",
        created_at=now,
        completed_at=now,
    )
    log = WorldEvolutionLog(
        id=uuid.uuid4(),
        world_id=world.id,
        agent_id=agent.id,
        evolution_type=activity_type,
        changes_made=data,
        impact_score=impact,
        created_at=now,
    )
    s.add_all([activity, log])
    state = dict(world.evolution_state or {})
    counts = dict(state.get("activity_counts") or {})
    counts[activity_type] = int(counts.get(activity_type, 0)) + 1
    recent = list(state.get("recent") or [])
    recent.append(
        {
            "at": now.isoformat().replace("+00:00", "Z"),
            "agent": agent.agent_name,
            "activity_type": activity_type,
            "impact": impact,
            "activity_id": str(activity.id),
            "log_id": str(log.id),
        }
    )
    state.update(
        activity_counts=counts,
        total_activities=int(state.get("total_activities", 0)) + 1,
        total_impact=float(state.get("total_impact", 0.0)) + impact,
        recent=recent[-RECENT_IMPACTS:],
    )
    world.evolution_state = state
    world.version = (world.version or 0) + 1
    world.last_evolved_at = now
    agent.last_active_at = now
    return activity, log


def run_agent_activity(
    agent_name: str,
    world_id: Any,
    activity_type: str,
    data: dict[str, Any],
    *,
    impact: float = 0.5,
    session: Session | None = None,
    as_user: Any = None,
    edits: Iterable[tuple[int, int, int, Any]] | None = None,
) -> AIAgentActivity:
    """Record an agent's activity in a world and log the world evolution it makes.

    The world's ``evolution_state`` counts the activity under its type and keeps it among
    the recent ones (the shape is documented on ``World.evolution_state``); the world's
    ``version`` goes up by one. ``impact`` (0..1, the seed's 0.5 by default) is the log
    entry's ``impact_score``. With ``as_user``, that user must have created the world.

    ``edits`` (``(x, y, z, state)`` block edits, as ``ChunkStore.set_blocks``) are the
    activity's changes to the world, made in the same transaction and journaled under
    ``"agent:<agent id>"``; the activity and its log entry record their journal range
    (``journal_from`` exclusive, ``journal_to`` inclusive), so what the agent did can be
    found and rolled back (``db.chunks(w).rollback(actor=f"agent:{agent.id}", start=...)``).
    """
    wid = parse_id(world_id, "world_id")
    checked = validated(
        AgentActivityInput, agent_name=agent_name, activity_type=activity_type, data=data
    )
    score = check_impact(impact)
    with session_scope(session, write=True) as s:
        require_permission(s, as_user, world_id=wid)
        agent = agent_named(s, checked.agent_name)
        world = lock_world(s, wid)
        span = None
        if edits is not None:
            height, min_y = world_shape(world.world_settings)
            span = edit_blocks(
                s.connection(),
                wid,
                edits,
                height=height,
                min_y=min_y,
                actor=f"agent:{agent.id}",
                **world_compression(world.world_settings),
            )
        activity, log = record_evolution(
            s, agent, world, checked.activity_type, checked.data, score
        )
        if span is not None:
            activity.journal_from, activity.journal_to = span
            log.journal_from, log.journal_to = span
    return activity


def check_impact(impact: Any) -> float:
    if isinstance(impact, bool) or not isinstance(impact, int | float) or not 0 <= impact <= 1:
        raise ValidationError(f"impact must be a number in 0..1, got {impact!r}", field="impact")
    return float(impact)
