"""The HTTP API's request and response bodies (FastAPI builds the OpenAPI schema from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

SessionStatusText = str
"""``running``, ``completed``, ``failed``, ``cancelled``, ``budget_exceeded`` (the supervisor's statuses)."""


class Health(BaseModel):
    ok: bool = True
    version: str


class ErrorBody(BaseModel):
    """Every refused request: what went wrong and why (``reason`` says what to do)."""

    error: str
    reason: str = ""


class TeamAgent(BaseModel):
    id: str
    role: str = ""
    model: str | None = None


class TeamInfo(BaseModel):
    name: str | None
    path: str
    """Relative to its team folder (a folder holding ``team.yaml``, or the YAML file)."""
    description: str = ""
    agents: list[TeamAgent] = []
    error: str | None = None
    """Why the file does not load (then ``name`` is null)."""


class ValidateRequest(BaseModel):
    yaml: str


class ValidateResponse(BaseModel):
    ok: bool
    errors: list[str] = []


class CreateSession(BaseModel):
    team: str
    """A team name or a path under the server's team folders."""
    input: str
    placement: Literal["dedicated", "packed"] | None = None
    stream_tokens: bool = False
    conversation: bool = False
    """The entry agent's reply ends a turn, not the session (send more turns, then cancel to end it)."""
    model: str | None = None


class SessionResultBody(BaseModel):
    status: SessionStatusText
    output: str | None = None
    error: str | None = None


class SessionInfo(BaseModel):
    id: str
    user: str | None
    team: str
    status: SessionStatusText
    created_at: datetime
    turns: int = 0
    result: SessionResultBody | None = None
    run_id: str | None = None
    live: bool = False
    """Held by the server process that answered (else read from the lake, the checkpoints or another replica)."""


class TurnRequest(BaseModel):
    input: str
    to: str | None = None


class Accepted(BaseModel):
    accepted: bool = True
    session_id: str


class ApprovalInfo(BaseModel):
    id: str
    session_id: str
    agent: str
    tool: str
    arguments: str
    risk: dict[str, Any] | None = None
    created_at: datetime | None = None


class DecisionRequest(BaseModel):
    reason: str = ""


class DecisionResponse(BaseModel):
    id: str
    session_id: str
    approved: bool
    detail: dict[str, Any] = {}


class BlackboardEntry(BaseModel):
    key: str
    value: Any = None
    version: int
    writer: str


class BlackboardView(BaseModel):
    entries: list[BlackboardEntry] = []


class TaskInfo(BaseModel):
    id: str
    parent_id: str | None = None
    goal: str
    assignee: str | None = None
    status: str
    output: str | None = None


class TaskList(BaseModel):
    tasks: list[TaskInfo] = []


class RunInfo(BaseModel):
    """A past (or running) session from the lake."""

    kind: Literal["session", "sweep"] = "session"
    session_id: str
    run_id: str
    team: str | None = None
    user: str | None = None
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reply: str | None = None
    error: str | None = None
    events: int = 0


__all__ = [
    "Accepted", "ApprovalInfo", "BlackboardEntry", "BlackboardView", "CreateSession", "DecisionRequest",
    "DecisionResponse", "ErrorBody", "Health", "RunInfo", "SessionInfo", "SessionResultBody",
    "TaskInfo", "TaskList", "TeamAgent", "TeamInfo", "TurnRequest", "ValidateRequest", "ValidateResponse",
]
