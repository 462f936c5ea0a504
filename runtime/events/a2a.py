"""Payloads of a remote A2A member's calls: the request sent to the remote agent, its streamed updates, the outcome.

Their own family rather than ``llm.*``: the remote agent is not a model (no prompt, no tokens, no tool
calls), and an ``llm.response`` for it would count in the model metrics and the token budgets. The
events sit on the member's row (``agent``) with the task it works on, like its tool calls.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class A2ARequestPayload(Payload):
    """The member sent a message to its remote agent (a new remote task, or more input for one)."""

    event_type: Literal["a2a.request"] = "a2a.request"
    url: str
    """The remote agent's base URL (no credentials or query)."""
    agent_name: str = ""
    """The name on its agent card."""
    call_id: str
    """Ties the request to its updates and response."""
    text: str
    """What was sent (clipped)."""
    context_id: str | None = None
    """The remote conversation it continues (``None``: the first call, the remote agent picks one)."""
    remote_task_id: str | None = None
    """The remote task it adds input to (one that asked for input), else ``None``."""
    streaming: bool = False
    """The call streams the remote task's updates (the card offers it and the member did not turn it off)."""


class A2AUpdatePayload(Payload):
    """A streamed update of the remote task: a status change (with its message) or an artifact."""

    event_type: Literal["a2a.update"] = "a2a.update"
    call_id: str
    """The ``a2a.request`` it belongs to."""
    kind: Literal["status", "artifact", "message", "task"]
    """What came: a status update, an artifact, a message, or the task itself."""
    state: str | None = None
    """The remote task's state after it (``working``, ``input_required``, ...)."""
    text: str = ""
    """The status message's or artifact's text (clipped)."""
    artifact: str | None = None
    """The artifact's name (or id)."""


class A2AResponsePayload(Payload):
    """The remote task ended or stopped for input; its text is the member's reply. ``status`` on the event: ``ok``,
    ``input_required``, ``failed``, ``rejected``, ``canceled`` or ``error`` (the call itself failed)."""

    event_type: Literal["a2a.response"] = "a2a.response"
    call_id: str
    """The ``a2a.request`` it answers."""
    state: str
    """The remote task's final state (``completed``, ``failed``, ...; ``error``: no answer came)."""
    text: str = ""
    """The reply the member gives (clipped): the artifacts' text, else the final message's."""
    context_id: str | None = None
    """The remote conversation (the member's next call continues it)."""
    remote_task_id: str | None = None
    """The remote task's id."""
    artifacts: list[str] = Field(default_factory=list)
    """Names (or ids) of the artifacts the remote task produced."""
    updates: int = 0
    """Streamed updates received."""
    error: str | None = None
    """Why the call failed (transport, HTTP status, a remote error), else ``None``."""


__all__ = ["A2ARequestPayload", "A2AResponsePayload", "A2AUpdatePayload"]
