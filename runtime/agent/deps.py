"""What an agent needs from its session, in one frozen bag.

The host builds an :class:`AgentDeps` once per agent and the agent passes it, unchanged, to each
:class:`~troupe.runtime.agent.loop.Turn` and on to each :class:`~troupe.runtime.agent.toolexec.ToolRun`:
one place says what a turn can reach, and nothing is set on an agent from outside after it exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from troupe.runtime.agent.dispatch import Dispatcher, LocalDispatcher
from troupe.runtime.agent.recorded import ToolReplay
from troupe.runtime.config import AgentSpec, WorkspaceConfig
from troupe.runtime.events import Emitter
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.llm.types import LLMClient
from troupe.runtime.safety import RiskConfig, SandboxConfig, SecretRef
from troupe.tools.context import SessionServices
from troupe.tools.spec import Tool, ToolSpec

if TYPE_CHECKING:
    from troupe.runtime.knowledge.access import KnowledgeAccess

DEFAULT_CONTEXT_RETRIES = 2
"""Shrink-and-retry rounds after a context-length error when the agent's profile does not say."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDeps:
    """Everything an agent takes from the host that runs it (plain objects; no Ray)."""

    spec: AgentSpec
    """The agent's definition from the team file (or its parent's ``delegate`` call)."""
    session_id: SessionId
    run_id: RunId
    llm: LLMClient
    """The agent's model client, built from its profile."""
    tools: Mapping[str, Tool]
    """The tools granted to the agent, by name."""
    session_tools: frozenset[str] = frozenset()
    """Every tool the session has, granted to this agent or not: a call to one it was not granted is a
    ``guardrail.denied`` (``not_granted``), not an unknown tool."""
    services: SessionServices
    """The session's blackboard, task registry, supervisor and messaging, wherever they live."""
    emit: Emitter
    """Emits this agent's events (the agent adds its current task id)."""
    dispatcher: Dispatcher = field(default_factory=LocalDispatcher)
    """Where tool calls run: in this process, or through the cluster's scheduler."""
    team: Sequence[AgentSpec] = ()
    """The team's agents, for the system prompt."""
    parent: AgentId | None = None
    """The agent that spawned this one (``delegate``), if any."""
    profile: str | None = None
    """The name of the model profile the agent runs on."""
    temperature: float | None = None
    context_retries: int = DEFAULT_CONTEXT_RETRIES
    """Shrink-and-retry rounds after a context-length error (from the profile)."""
    stream_tokens: bool = False
    """Emit ``llm.token`` events while the model streams."""
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    """Where the session's files live (the file and shell tools)."""
    approval_timeout_s: float = 300.0
    """How long a call that needs approval waits before it is denied."""
    checkpoints: str | None = None
    """The session's checkpoint store when it is durable (tool results are recorded there by key)."""
    backpressure: Callable[[], Awaitable[None]] | None = None
    """Waits while the host's event buffer is over its high-water mark (before each model round)."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """How ``shell`` and opted-in cpu tools are confined (the team's ``sandbox:``)."""
    risk: RiskConfig = field(default_factory=RiskConfig)
    """Risk scoring of this agent's tool calls (the team's ``risk:``)."""
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    """The team's secrets by name (references only: values are read where a tool uses them)."""
    snapshot: Callable[[ToolSpec], AbstractAsyncContextManager[None]] | None = None
    """Wraps each tool call (after its approval): the workspace's history snapshots it first when the
    tool can write the workspace (:mod:`troupe.runtime.session.workspace_history`); ``None``: no history."""
    replay: ToolReplay | None = None
    """Set when the session plays back a record (:mod:`troupe.runtime.agent.recorded`): tool calls whose
    effects leave the session answer with their recorded results instead of running."""
    knowledge: KnowledgeAccess | None = None
    """The session's knowledge base, for ``knowledge_search`` (``None``: no location known)."""


__all__ = ["DEFAULT_CONTEXT_RETRIES", "AgentDeps"]
