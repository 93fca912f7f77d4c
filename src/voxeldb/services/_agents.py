"""AI agents: their activities and the world evolution they cause."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxeldb._time import utcnow
from voxeldb.errors import UnknownIdError, ValidationError
from voxeldb.meta import AIAgent, AIAgentActivity, World, WorldEvolutionLog
from voxeldb.services._common import parse_id, session_scope, validated
from voxeldb.services._validation import AgentActivityInput, check_json_object

__all__ = ["create_agent", "run_agent_activity"]


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


def run_agent_activity(
    agent_name: str,
    world_id: Any,
    activity_type: str,
    data: dict[str, Any],
    *,
    session: Session | None = None,
) -> AIAgentActivity:
    """Record an agent's activity in a world and log the world evolution it makes."""
    wid = parse_id(world_id, "world_id")
    checked = validated(
        AgentActivityInput, agent_name=agent_name, activity_type=activity_type, data=data
    )
    with session_scope(session, write=True) as s:
        agent = s.scalar(select(AIAgent).where(AIAgent.agent_name == checked.agent_name))
        if agent is None:
            raise UnknownIdError(f"agent_name: no agent {checked.agent_name!r}", field="agent_name")
        world = s.get(World, wid)
        if world is None:
            raise UnknownIdError(f"world_id: no world {wid}", field="world_id")
        now = utcnow()
        activity = AIAgentActivity(
            agent_id=agent.id,
            world_id=wid,
            activity_type=checked.activity_type,
            activity_data=checked.data,
            results={"status": "completed"},
            status="completed",
            completed_at=now,
        )
        s.add(activity)
        s.add(
            WorldEvolutionLog(
                world_id=wid,
                agent_id=agent.id,
                evolution_type=checked.activity_type,
                changes_made=checked.data,
                impact_score=0.5,
            )
        )
        agent.last_active_at = now
        world.last_evolved_at = now
    return activity
