"""What the MCP tools return: plain pydantic models (they become each tool's output schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.session.supervisor import Usage


class RunOutcome(BaseModel):
    """A session run to its end by ``run_team``."""

    session_id: str
    run_id: str
    team: str
    status: str = Field(description="completed, failed, cancelled or budget_exceeded")
    reply: str | None = Field(default=None, description="the entry agent's final answer")
    error: str | None = None
    usage: Usage
    duration_s: float | None = None


class SessionInfo(BaseModel):
    """An open session of this server."""

    session_id: str
    run_id: str
    team: str
    team_path: str
    entry: str = Field(description="the agent that receives send_message by default and whose reply ends the session")
    agents: list[str]
    status: str = Field(description="idle (no message yet), running, completed, failed, cancelled or budget_exceeded")
    done: bool = Field(description="true once the session has ended (the reply or error is final)")
    reply: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    messages_sent: int = 0
    opened_at: str
    closed: bool = False
    user: str | None = Field(default=None, description="the user the session belongs to (the API key's user; "
                                                       "'local' without keys or over stdio)")


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class BlackboardItem(BaseModel):
    key: str
    value: Any
    version: int
    author: str
    kind: str
    ts: str


class BlackboardView(BaseModel):
    session_id: str
    prefix: str
    entries: list[BlackboardItem]


class TaskNode(BaseModel):
    id: str
    goal: str
    status: str
    assignee: str | None = None
    created_by: str
    output: Any = None
    error: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    children: list[TaskNode] = Field(default_factory=list)


class TaskTree(BaseModel):
    session_id: str
    tasks: list[TaskNode] = Field(description="top-level tasks, each with its subtasks under children")
    counts: dict[str, int] = Field(description="number of tasks per status")


class LakeRows(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool = Field(description="true when more rows matched than the limit")
    lake: str


class TeamInfo(BaseModel):
    name: str | None = None
    path: str = Field(description="what to pass as `team` (relative to its team folder)")
    folder: str
    description: str = ""
    entry: str | None = None
    agents: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list, description="model profiles the team defines (for `model`)")
    error: str | None = Field(default=None, description="why the file does not load, if it does not")


class TeamList(BaseModel):
    folders: list[str]
    teams: list[TeamInfo]


__all__ = ["BlackboardItem", "BlackboardView", "LakeRows", "RunOutcome", "SessionInfo", "SessionList",
           "TaskNode", "TaskTree", "TeamInfo", "TeamList"]
