"""What a tool sees of the runtime: who is calling, and the services of its session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from troupe.runtime.config import AgentSpec, WorkspaceConfig
from troupe.runtime.events import Emitter, null_emitter
from troupe.runtime.ids import AgentId, MessageId, RunId, SessionId, TaskId
from troupe.runtime.messages import Envelope
from troupe.runtime.safety import SandboxConfig, SecretRef
from troupe.runtime.secrets import resolve as resolve_secret

if TYPE_CHECKING:
    from troupe.runtime.knowledge.access import KnowledgeAccess


class SessionServices(Protocol):
    """The session's logical actors, reachable from any placement through one API."""

    async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
        """Call a method of a service actor (``blackboard``, ``tasks``, ``session``) of this session."""
        ...

    async def send(self, envelope: Envelope) -> None:
        """Deliver a message to an agent (or to every member of ``envelope.topic``)."""
        ...

    async def spawn_child(self, spec: AgentSpec, *, parent: AgentId) -> AgentId:
        """Start a child agent next to its parent; returns its id."""
        ...

    async def terminate(self, agent: AgentId) -> None: ...

    def members(self) -> Sequence[AgentId]:
        """The agents of this session (team members and live children)."""
        ...


class TaintView(Protocol):
    """What a tool sees of its agent's taint (risk scoring, ``troupe.runtime.agent.taint.Taint``): the
    session tools that write for other agents (task goals, task outputs, blackboard entries) mark what a tainted agent
    wrote, and read what tainted agents wrote to it."""

    sources: list[str]
    """The untrusted sources the agent has read (empty: it is not tainted)."""

    def read(self, source: str, text: str) -> None:
        """The agent read ``text`` from an untrusted ``source``."""
        ...

    def vouched_parts(self, text: str) -> list[str]:
        """The values in ``text`` the user's messages (the agent's reference) vouch for."""
        ...

    def hear(self, text: str) -> None:
        """``text`` is trusted (vouched for by a writer's user): it joins the agent's reference."""
        ...


@dataclass
class ToolContext:
    session_id: SessionId
    run_id: RunId
    agent: AgentId
    services: SessionServices
    spec: AgentSpec
    tool_call_id: str = ""
    message_id: MessageId | None = None
    task_id: TaskId | None = None
    request: str | None = None
    """The text of the request the agent is serving (the user's message, or its task's goal)."""
    send: Callable[[Envelope], Awaitable[None]] | None = None
    """How the agent sends (records ``message.sent``, then routes); ``services.send`` when unset."""
    emit: Emitter = null_emitter
    end_turn: Callable[[], None] = lambda: None
    """Ends the agent's turn after this batch of tool calls, without a reply."""
    forget_notices: Callable[[Sequence[str]], int] = lambda task_ids: 0
    """Drops queued notices about these tasks (the caller has already seen their outcome)."""
    idempotency_key: str = ""
    """Stable across retries and re-deliveries of this call: a tool with side effects can use it to do them once."""
    workspace: Path | None = None
    """This session's workspace folder (the file and shell tools stay inside it)."""
    workspace_config: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """How ``shell`` and opted-in cpu tools are confined (the team's ``sandbox:``)."""
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    """The team's secrets by name (references; a tool reads a value with :meth:`secret`)."""
    taint: TaintView | None = None
    """The calling agent's taint; ``None`` when the team's risk scoring is off."""
    knowledge: KnowledgeAccess | None = None
    """The session's knowledge base (``knowledge_search``); ``None`` when it has no location."""
    extra: dict[str, Any] = field(default_factory=dict)

    async def send_message(self, envelope: Envelope) -> None:
        await (self.send or self.services.send)(envelope)

    def secret(self, name: str) -> str:
        """The value of the team's secret ``name`` (``secrets:`` in the team file), read on this node
        and scrubbed from every event and log of this process; never return it to the model as is
        (a result that echoes it reaches the model as ``[redacted]``). Raises
        :class:`~troupe.runtime.secrets.SecretError` with the fix when it cannot be read."""
        return resolve_secret(name, self.secrets)


__all__ = ["SessionServices", "TaintView", "ToolContext"]
