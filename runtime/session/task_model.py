"""A task of the session task registry: its status machine, its record, and the texts about it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.errors import ModelVisibleError
from troupe.runtime.ids import AgentId, SessionId, TaskId

NOTICE_OUTPUT_LIMIT: Final = 500
"""Characters of output quoted in a completion notice's text (the full output is in its data)."""


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})

ALLOWED_TRANSITIONS: Final[dict[TaskStatus, frozenset[TaskStatus]]] = {
    TaskStatus.PENDING: frozenset(
        {TaskStatus.RUNNING, TaskStatus.BLOCKED, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.RUNNING: frozenset({TaskStatus.BLOCKED, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.BLOCKED: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.DONE: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}
"""A blocked task must be resumed (``running``) before it can be ``done``; terminal states are final."""

_ORDER = list(TaskStatus)


class TaskError(ModelVisibleError, ValueError):
    """A task request that cannot be carried out as asked (duplicate id, terminal parent, bad field)."""


class UnknownTaskError(ModelVisibleError, LookupError):
    """No task has this id; the message lists known ids so the caller can correct itself."""


class Task(BaseModel):
    """One unit of delegated work. Immutable: the registry replaces it on every change."""

    model_config = ConfigDict(frozen=True)

    id: TaskId
    parent_id: TaskId | None = None
    session_id: SessionId
    assignee: AgentId | None = None
    created_by: AgentId
    goal: str
    status: TaskStatus = TaskStatus.PENDING
    input: Any = None
    output: Any = None
    error: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    """References to what the task produced (blackboard keys, file paths), in the order added."""
    children: list[TaskId] = Field(default_factory=list)
    taint: list[str] = Field(default_factory=list)
    """Risk scoring: the untrusted sources its creator had read when it wrote the goal (empty: none); the
    assignee then reads the goal as untrusted content, not as its reference."""
    vouched: list[str] = Field(default_factory=list)
    """Values in the goal that the tainted creator's reference (its user's messages) vouches for."""
    output_taint: list[str] = Field(default_factory=list)
    """The untrusted sources whoever wrote the output (or error) had read: its completion notice taints."""
    output_by: AgentId | None = None
    """Who wrote the output (or error)."""
    turn: int | None = None
    """The conversation's user turn it was created in (cancelling that turn cancels it while still open)."""
    created_at: datetime
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def task_id_of(value: TaskId | str) -> TaskId:
    """A TaskId, turning a malformed id into an UnknownTaskError (no such task can exist)."""
    try:
        return TaskId(value)
    except ValueError as e:
        raise UnknownTaskError(str(e), task_id=str(value)) from None


def status_of(value: TaskStatus | str) -> TaskStatus:
    try:
        return TaskStatus(value)
    except ValueError:
        raise TaskError(f"unknown task status {value!r}; use one of {status_names(TaskStatus)}") from None


def status_names(statuses: Iterable[TaskStatus]) -> str:
    ordered = sorted(statuses, key=_ORDER.index)
    return ", ".join(s.value for s in ordered) if ordered else "none"


def merge_artifacts(current: list[str], new: Iterable[str]) -> list[str]:
    if isinstance(new, str):
        new = [new]
    out = list(current)
    for item in new:
        if not isinstance(item, str) or not item:
            raise TaskError(f"artifacts must be non-empty strings (blackboard keys, paths), got {item!r}")
        if item not in out:
            out.append(item)
    return out


def completion_text(task: Task) -> str:
    """``Task t-1 done: <output>`` / ``Task t-1 failed: <error>``, quoting at most a few hundred characters."""
    if task.status is TaskStatus.FAILED:
        detail = preview_text(task.error) if task.error else "no error given"
    elif task.output is not None:
        detail = preview_text(task.output)
    elif task.error:
        detail = preview_text(task.error)
    else:
        detail = "no output" if task.status is TaskStatus.DONE else ""
    return f"Task {task.id} {task.status}: {detail}" if detail else f"Task {task.id} {task.status}."


def preview_text(value: Any, limit: int = NOTICE_OUTPUT_LIMIT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = [
    "ALLOWED_TRANSITIONS",
    "NOTICE_OUTPUT_LIMIT",
    "TERMINAL",
    "Task",
    "TaskError",
    "TaskStatus",
    "UnknownTaskError",
    "completion_text",
    "merge_artifacts",
    "preview_text",
    "status_names",
    "status_of",
    "task_id_of",
]
