"""The message envelope every logical actor receives.

Delivery is at-least-once: a mailbox de-duplicates by :attr:`Envelope.id`, so a re-delivered
envelope never has effects twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.ids import AgentId, MessageId, RunId, SessionId, TaskId


class MessageKind(StrEnum):
    TEXT = "text"
    """A message for the agent to act on (from the user or another agent)."""
    TASK = "task"
    """A task assignment; the agent's reply completes the task."""
    NOTICE = "notice"
    """Information the agent should see (a child task finished, a subscribed key changed)."""
    CONTROL = "control"
    """Pause / resume / cancel / terminate: jumps the mailbox queue."""


class ControlOp(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    TERMINATE = "terminate"


class Trace(BaseModel):
    """Ids that tie a message to the run and the causal chain that produced it."""

    model_config = ConfigDict(frozen=True)

    run_id: RunId | None = None
    task_id: TaskId | None = None
    parent_event_id: str | None = None
    turn: int | None = None
    """The session's user turn the message belongs to: its recipient works on that turn (and stamps it
    on its events and on the messages it sends in turn)."""


CURRENT_TURN: ContextVar[int | None] = ContextVar("troupe_current_turn", default=None)
"""The turn the code running now works for: set by an agent for its turn, and by its host around a
service call the agent made (the call carries it as :data:`TURN_KWARG`), so the service's events and
notices carry it too."""

TURN_KWARG: Final = "_turn"
"""The keyword a service call carries the caller's turn in (its host takes it out)."""


@contextlib.contextmanager
def turn_scope(turn: int | None) -> Iterator[None]:
    """Run a block for ``turn`` (:data:`CURRENT_TURN`); ``None``: as it is."""
    if turn is None:
        yield
        return
    token = CURRENT_TURN.set(turn)
    try:
        yield
    finally:
        CURRENT_TURN.reset(token)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: MessageId = Field(default_factory=MessageId.new)
    session_id: SessionId
    sender: AgentId
    recipient: AgentId | None = None
    """A single recipient; ``None`` when ``topic`` addresses a group."""
    topic: str | None = None
    """A group name for broadcast (every agent listing the group receives a copy)."""
    kind: MessageKind = MessageKind.TEXT
    content: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    """Structured payload: a control op, a task id, a blackboard key."""
    reply_to: MessageId | None = None
    deadline: datetime | None = None
    trace: Trace = Field(default_factory=Trace)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def is_control(self) -> bool:
        return self.kind is MessageKind.CONTROL

    def to(self, recipient: AgentId) -> Envelope:
        """A copy for one member of a broadcast (the id stays, so duplicates still collapse)."""
        return self.model_copy(update={"recipient": recipient})


__all__ = ["CURRENT_TURN", "TURN_KWARG", "ControlOp", "Envelope", "MessageKind", "Trace", "turn_scope"]
