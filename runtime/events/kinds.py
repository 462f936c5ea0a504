"""The event types: one dotted name per kind of thing that happens in a session."""

from __future__ import annotations

from typing import Final, Literal, get_args

EventType = Literal[
    "session.started",
    "session.finished",
    "session.resumed",
    "actor.restored",
    "turn.finished",
    "turn.cancelled",
    "message.sent",
    "message.delivered",
    "llm.request",
    "llm.token",
    "llm.response",
    "llm.error",
    "tool.call",
    "tool.result",
    "tool.error",
    "tool.progress",
    "task.created",
    "task.status",
    "blackboard.put",
    "blackboard.expired",
    "agent.state",
    "agent.spawned",
    "agent.error",
    "context.compacted",
    "guardrail.denied",
    "approval.requested",
    "approval.decided",
    "budget.exceeded",
    "environment.opened",
    "environment.captured",
    "workspace.snapshot",
    "workspace.rollback",
    "memory.written",
    "memory.forgotten",
    "memory.recalled",
    "plan.created",
    "plan.step",
    "plan.revised",
    "reflection",
    "access.denied",
    "skill.loaded",
    "knowledge.searched",
    "elicitation.requested",
    "elicitation.answered",
    "mcp.log",
    "mcp.subscription",
    "mcp.resource_updated",
    "a2a.request",
    "a2a.update",
    "a2a.response",
]
"""Every event type; each has one payload model (see :mod:`troupe.runtime.events.registry`)."""

EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

EPHEMERAL_TYPES: Final = frozenset({"llm.token"})
"""Streamed to live subscribers but not written to the lake (one row per token is noise)."""

__all__ = ["EPHEMERAL_TYPES", "EVENT_TYPES", "EventType"]
