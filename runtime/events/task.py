"""Payloads of the task registry: a task created, a task's status changed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class TaskCreatedPayload(Payload):
    """A task was created (``task_id``; ``agent`` is its creator; ``status`` its first status)."""

    event_type: Literal["task.created"] = "task.created"
    goal: str
    """What is to be done."""
    parent_id: str | None
    """The task it is a subtask of, if any."""
    assignee: str | None
    """The agent it is assigned to, if any."""
    input: Any
    """Its input (JSON), or a preview of it when too big for one row."""


class TaskStatusPayload(Payload):
    """A task changed (``task_id``; ``agent`` made the change; ``status`` is the new status)."""

    event_type: Literal["task.status"] = "task.status"
    from_: str = Field(alias="from")
    """The status before."""
    to: str
    """The status after."""
    output: Any
    """Its output (JSON), or a preview when too big for one row."""
    error: str | None
    """Why it failed, if it did."""
    assignee: str | None
    """Its assignee now."""
    artifacts: list[str]
    """Blackboard keys of what it produced."""
    previous_assignee: str | None = None
    """The assignee before, when the change was a reassignment."""
    cancelled_with: str | None = None
    """The task whose cancellation cancelled this one (a descendant's row)."""


__all__ = ["TaskCreatedPayload", "TaskStatusPayload"]
