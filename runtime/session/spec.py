"""What every host of a session is told about it, and how hosts reach each other's logical actors."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from troupe.runtime.agent.a2a_remote import RemoteAgent
from troupe.runtime.agent.recorded import ReplayPlan, ToolReplay, replay_parts
from troupe.runtime.config import USER_SIM, AgentSpec, Placement, TeamConfig
from troupe.runtime.ids import BLACKBOARD, MEMORY, SUPERVISOR, TASKS, AgentId, RunId, SessionId
from troupe.runtime.knowledge.access import KnowledgeAccess, shared_access
from troupe.runtime.llm.types import LLMClient
from troupe.runtime.memory.service import uses_memory
from troupe.runtime.messages import Envelope

SERVICES: tuple[AgentId, ...] = (SUPERVISOR, BLACKBOARD, TASKS, MEMORY)
"""The session services (``memory`` only where an agent has memory: :meth:`SessionSpec.all_names`)."""

SERVICE_METHODS: dict[AgentId, frozenset[str]] = {
    BLACKBOARD: frozenset({"put", "get", "list", "history", "subscribe", "unsubscribe", "snapshot"}),
    TASKS: frozenset({"create", "update", "assign", "get", "list", "tree", "cancel", "wait", "wait_any", "snapshot",
                      "cancel_turn", "pending_waits"}),
    MEMORY: frozenset({"remember", "update", "forget", "recall", "history", "recall_for_turn"}),
    SUPERVISOR: frozenset({"start", "charge", "deliver", "agent_failed", "cancel", "wait", "describe",
                           "request_approval", "decide", "pending_approvals", "resumed",
                           "request_elicitation", "answer_elicitation", "pending_elicitations",
                           "say", "end", "wait_turn", "conversation_turns", "turn_under_way", "cancel_turn"}),
}
AGENT_METHODS = frozenset({"describe"})
DEFAULT_BASE = "troupe-samples"
"""Under the temp dir: where sample dirs go when the environment names no ``sample_dir``."""


class SessionSpec(BaseModel):
    """What every host of a session is told about it (crosses processes)."""

    session_id: SessionId
    run_id: RunId
    team: TeamConfig
    placement: Placement = Placement.DEDICATED
    stream_tokens: bool = False
    checkpoints: str | None = None
    """The checkpoint store (:mod:`troupe.runtime.storage.checkpoint`) when the session is durable, else ``None``."""
    lake: str | None = None
    """The runtime's lake: the session's workspace snapshots go to ``<lake>/workspaces`` (``None``: none are taken)."""
    labels: dict[str, str] = {}
    """What the session is a sample of, for its environment: a sweep sets ``case_id`` and ``sample``
    (``${case_id}``/``${sample}`` in a session-scoped MCP server's config and the environment's hooks)."""

    conversation: bool = False
    """A conversation: the entry agent's reply ends a turn, not the session (see :mod:`troupe.runtime.session.supervisor`)."""
    replay: ReplayPlan | None = None
    """Set when the session plays back another's record (``troupe replay``/``troupe fork``): each agent's
    model and outside tools answer from it (:mod:`troupe.runtime.agent.recorded`)."""
    lineage: dict[str, str] = {}
    """Where the session comes from, for its ``session.started`` event: ``replay_of``, or ``forked_from``
    and ``fork_point``."""
    owner: str | None = None
    """The user the session belongs to (``troupe serve``'s principal), recorded as ``session.started``'s ``user``."""

    @property
    def converses(self) -> bool:
        """Whether replies end turns (asked for, or driven by a simulated user)."""
        return self.conversation or self.team.user is not None

    def knowledge_access(self) -> KnowledgeAccess | None:
        """The knowledge base its agents search (``<lake>/knowledge`` or the team's ``knowledge.location``,
        where ``${sample_dir}`` and the other :func:`session_values` stand for this session's)."""
        return shared_access(self.team.knowledge, self.team.models, lake=self.lake, values=session_values(self))

    def members(self) -> list[AgentId]:
        ids = [a.id for a in self.team.agents]
        return [*ids, USER_SIM] if self.team.user is not None else ids

    def agent(self, name: str) -> AgentSpec:
        """A member's spec (the simulated user's included)."""
        if name == USER_SIM and self.team.user is not None:
            return self.team.user.agent_spec(self.team.default_model)
        return self.team.agent(name)

    def all_names(self) -> list[AgentId]:
        return [*(s for s in SERVICES if s != MEMORY or uses_memory(self.team)), *self.members()]


class Transport(Protocol):
    """Reaches logical actors held by other hosts."""

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool: ...

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any: ...


def started_record(spec: SessionSpec) -> dict[str, Any]:
    """What ``session.started`` records besides the input, for a replay: the team config as the
    session runs it, whether it is a conversation, and where it comes from (a replay, a fork)."""
    return {"config": spec.team.model_dump(mode="json", by_alias=True, exclude_defaults=True), "conversation": spec.conversation, **spec.lineage,
            **({"user": spec.owner} if spec.owner else {})}


def agent_model(spec: SessionSpec, agent: str, build: Callable[[], LLMClient]) -> tuple[LLMClient, ToolReplay | None]:
    """An agent's model client (``build()``), or in a session that plays back a record, the recorded
    client (handing over to ``build()``'s client past a fork's point) and the recorded tool outcomes. A remote
    A2A member's is its :class:`~troupe.runtime.agent.a2a_remote.RemoteAgent` (docs/a2a.md)."""
    member = next((a for a in spec.team.agents if a.id == agent and a.a2a is not None), None)
    if member is not None and member.a2a is not None:
        return RemoteAgent(member.a2a, agent=agent, secrets=spec.team.secrets), None
    if spec.replay is None:
        return build(), None
    return replay_parts(spec.replay, agent, build)


def sample_dir_for(spec: SessionSpec) -> Path:
    """The session's own folder, ``<sample_dir or temp/troupe-samples>/<session id>`` (not created here)."""
    env = spec.team.environment
    base = Path(env.sample_dir).expanduser() if env is not None and env.sample_dir else Path(tempfile.gettempdir()) / DEFAULT_BASE
    return base.resolve() / str(spec.session_id)


def session_values(spec: SessionSpec) -> dict[str, str]:
    """The values of ``${session_id}``, ``${sample_dir}``, ``${case_id}`` and ``${sample}`` for ``spec``."""
    return {"session_id": str(spec.session_id), "sample_dir": str(sample_dir_for(spec)),
            "case_id": spec.labels.get("case_id", ""), "sample": spec.labels.get("sample", "0")}


def root_of(agent: AgentId) -> AgentId:
    return AgentId(agent.split(".", 1)[0])


__all__ = ["AGENT_METHODS", "DEFAULT_BASE", "SERVICES", "SERVICE_METHODS", "SessionSpec", "Transport", "agent_model", "root_of",
           "sample_dir_for", "session_values", "started_record"]
