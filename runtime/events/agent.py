"""Payloads of an agent's life: a state change, a spawned child, an error."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class AgentStatePayload(Payload):
    """An agent moved between states (``status`` is the new one), or its turn was cancelled
    (``status`` ``cancelled``: then only ``turn`` is set)."""

    event_type: Literal["agent.state"] = "agent.state"
    from_: str | None = Field(default=None, alias="from")
    """The state before (``idle``, ``running``, ``paused``, ``error``, ``terminated``)."""
    to: str | None = None
    """The state after."""
    turn: int | None = None
    """The turn that was cancelled."""


class AgentSpawnedPayload(Payload):
    """An agent created a child agent (``agent`` is the child)."""

    event_type: Literal["agent.spawned"] = "agent.spawned"
    parent: str
    """The agent that spawned it."""
    tools: list[str]
    """The child's tools."""
    model: str | None
    """The model profile it uses."""


class AgentErrorPayload(Payload):
    """An agent's turn failed, or ran out of LLM rounds (``status`` says which)."""

    event_type: Literal["agent.error"] = "agent.error"
    error: str
    """What went wrong."""
    type: str | None = None
    """The error's class name (absent for ``max_rounds``)."""


__all__ = ["AgentErrorPayload", "AgentSpawnedPayload", "AgentStatePayload"]
