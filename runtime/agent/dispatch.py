"""Where a tool call runs once the policy let it through.

A :class:`Dispatcher` takes a validated call (a :class:`~troupe.runtime.agent.scheduler.ToolJob`) and runs it.
:class:`LocalDispatcher` runs everything in this process under one
:class:`~troupe.runtime.agent.scheduler.SchedulerCore` (tests, ``Troupe.local``); the Ray dispatcher in
``actors/`` runs inline tools here and sends the rest to the cluster's scheduler actor.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from troupe.runtime.agent.scheduler import SchedulerCore, ToolJob
from troupe.runtime.config import AgentSpec, McpServerConfig, ModelProfile, TeamConfig
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import call_with, register_all
from troupe.tools.sandbox import sandboxed_target
from troupe.tools.spec import Execution, Tool, ToolSpec, call_target

if TYPE_CHECKING:
    from troupe.tools.context import ToolContext
    from troupe.tools.mcp import McpManager


class McpRequest(BaseModel):
    """What an MCP call needs besides its arguments (crosses to the node's MCP actor)."""

    server: str
    config: McpServerConfig
    tool: str
    """The server's own tool name (or ``read_resource`` / ``get_prompt`` / ...)."""
    session_id: str = ""
    run_id: str = ""
    agent: str = ""
    call_id: str = ""
    sampling_profile: str | None = None
    """The calling agent's profile: the default model for the server's sampling requests (the
    session's profiles were registered once, with :meth:`Dispatcher.open_session`)."""
    workspace: str = ""
    """The calling session's workspace folder: a root the server is offered (``roots/list``)."""

    def caller(self) -> Any:
        from troupe.tools.mcp import CallerInfo

        return CallerInfo(session_id=self.session_id, run_id=self.run_id, agent=self.agent, call_id=self.call_id,
                          sampling_profile=self.sampling_profile, workspace=self.workspace)


def mcp_request(tool: Tool, ctx: ToolContext, profile: str | None) -> McpRequest:
    cfg: McpServerConfig = tool.cfg  # type: ignore[attr-defined]
    return McpRequest(
        server=tool.server, config=cfg, tool=tool.remote_name,  # type: ignore[attr-defined]
        session_id=str(ctx.session_id), run_id=str(ctx.run_id), agent=str(ctx.agent), call_id=ctx.tool_call_id,
        sampling_profile=profile, workspace=str(ctx.workspace) if ctx.workspace is not None else "",
    )


def session_scoped(team_servers: Mapping[str, McpServerConfig], agents: Sequence[AgentSpec] = ()) -> bool:
    """Whether any of a team's MCP servers is the session's own (``scope: session``), or one of ``agents`` may
    subscribe to a server's resources (``<server>__subscribe_resource``, by name or pattern): then the session's
    host must tell the dispatcher when the session ends (:meth:`Dispatcher.close_session`: its connections close,
    its subscriptions end)."""
    if any(cfg.scope == "session" for cfg in team_servers.values()):
        return True
    wanted = [f"{server}__subscribe_resource" for server in team_servers]
    return any(fnmatch.fnmatchcase(name, entry) for a in agents for entry in a.tools for name in wanted)


def samples(team_servers: Mapping[str, McpServerConfig]) -> bool:
    """Whether any of a team's MCP servers may ask the runtime's LLM (``sampling: true``): only
    then does a session register its model profiles with the dispatcher."""
    return any(cfg.sampling for cfg in team_servers.values())


def session_registration(team: TeamConfig) -> tuple[dict[str, ModelProfile], dict[str, SecretRef]] | None:
    """What a session's host registers with the dispatcher where the session starts
    (:meth:`Dispatcher.open_session`): its model profiles when one of its MCP servers may sample,
    its secrets' references when it has any (so whoever records tool results scrubs their values);
    ``None`` when neither."""
    models = dict(team.models) if samples(team.mcp_servers) else {}
    secrets = dict(team.secrets)
    return (models, secrets) if models or secrets else None


ProgressCallback = Callable[[dict[str, Any]], None]
"""Called with each progress notification of an MCP call (``progress``, ``total``, ``message``) as it arrives."""
ElicitCallback = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers an MCP call's elicitation requests (plain JSON both ways: :data:`troupe.tools.mcp.elicitation.Asker`)."""
UpdateCallback = Callable[[dict[str, Any]], Awaitable[None]]
"""Told of each update of a resource a ``subscribe_resource`` call subscribed to (``{"server", "uri", "session_id",
"agent"}``), for as long as the subscription lasts (:mod:`troupe.tools.mcp.subscriptions`)."""


class Dispatcher(Protocol):
    async def run(self, tool: Tool, job: ToolJob, ctx: ToolContext, mcp: McpRequest | None = None,
                  on_progress: ProgressCallback | None = None, on_elicit: ElicitCallback | None = None,
                  on_update: UpdateCallback | None = None) -> Any:
        """Run one call; an MCP call returns the server's :class:`~troupe.tools.mcp.McpCallResult`, and hands
        each progress notification to ``on_progress`` while it runs, wherever it runs, and each of the
        server's elicitation requests to ``on_elicit`` (its answer goes back to the server); a ``subscribe_resource``
        call's ``on_update`` is told of each update of the resource, wherever the connection lives, until the
        subscription ends."""
        ...

    async def mcp_specs(self, server: str, config: McpServerConfig, session_id: str = "") -> list[ToolSpec]:
        """The tools an MCP server offers (connecting on first use; a ``scope: session`` server's
        connection is ``session_id``'s own)."""
        ...

    async def open_session(self, session_id: str, models: Mapping[str, ModelProfile],
                           secrets: Mapping[str, SecretRef] | None = None) -> None:
        """Register a session's model profiles once, for MCP servers allowed to sample, and its
        secrets' references (read and registered for redaction where tool results are recorded)."""
        ...

    async def close_session(self, session_id: str) -> None:
        """Forget what :meth:`open_session` registered, and close the session's own MCP connections."""
        ...

    async def close_idle_mcp(self) -> int:
        """Close the node-scoped MCP connections with no call in flight (a sweep, at its end); returns how many."""
        ...

    async def close(self) -> None: ...


MAX_SAMPLING_SESSIONS = 4096
"""Sessions whose model profiles a long-lived MCP manager keeps for sampling (most recent first)."""


class SessionModels:
    """The model profiles of the sessions whose MCP servers may sample, by session id.

    Sessions register once (:meth:`register`) and are forgotten when they close; at most
    :data:`MAX_SAMPLING_SESSIONS` are kept (the oldest go first), because the MCP side lives as
    long as the runtime and a host that died never says goodbye.
    """

    def __init__(self, cap: int = MAX_SAMPLING_SESSIONS) -> None:
        self.cap = cap
        self._by_session: OrderedDict[str, dict[str, ModelProfile]] = OrderedDict()

    def register(self, session_id: str, models: Mapping[str, ModelProfile]) -> None:
        self._by_session[session_id] = dict(models)
        self._by_session.move_to_end(session_id)
        while len(self._by_session) > self.cap:
            self._by_session.popitem(last=False)

    def forget(self, session_id: str) -> None:
        self._by_session.pop(session_id, None)

    def all(self) -> dict[str, dict[str, ModelProfile]]:
        return dict(self._by_session)

    def of(self, caller: Any) -> dict[str, ModelProfile]:
        """The profiles of ``caller``'s session (a :class:`~troupe.tools.mcp.CallerInfo`); empty if unknown."""
        return self._by_session.get(caller.session_id, {})

    def __len__(self) -> int:
        return len(self._by_session)


def manager_sampler(models_of: Any) -> Any:
    """A sampler for an :class:`~troupe.tools.mcp.McpManager` that answers with the runtime's own LLM layer,
    using the profiles of the calling session (``models_of(caller) -> dict[str, ModelProfile]``)."""
    from troupe.runtime.llm.registry import build_client
    from troupe.tools.mcp import llm_sampler

    async def sample(server: str, cfg: McpServerConfig, params: Any, caller: Any) -> Any:
        models = models_of(caller)
        clients: list[Any] = []

        def build(profile: str) -> Any:
            client = build_client(profile, models, agent=getattr(caller, "agent", "") or "mcp")
            clients.append(client)
            return client

        try:
            return await llm_sampler(build)(server, cfg, params, caller)
        finally:
            for client in clients:
                await client.aclose()

    return sample


class LocalDispatcher:
    """Every execution kind in this process: I/O and CPU tools on this event loop (sync ones in a
    thread), MCP tools on an in-process manager, all under one scheduler core."""

    def __init__(self, *, core: SchedulerCore | None = None, mcp: McpManager | None = None) -> None:
        self.core = core or SchedulerCore()
        self._mcp = mcp
        self._models = SessionModels()

    @property
    def mcp(self) -> McpManager:
        if self._mcp is None:
            from troupe.tools.mcp import McpManager

            self._mcp = McpManager(sampler=manager_sampler(self._models.of))
        return self._mcp

    async def open_session(self, session_id: str, models: Mapping[str, ModelProfile],
                           secrets: Mapping[str, SecretRef] | None = None) -> None:
        if models:
            self._models.register(session_id, models)
        register_all(secrets or {})

    async def close_session(self, session_id: str) -> None:
        self._models.forget(session_id)
        if self._mcp is not None:
            await self._mcp.close_session(session_id)

    async def close_idle_mcp(self) -> int:
        return await self._mcp.close_idle() if self._mcp is not None else 0

    async def run(self, tool: Tool, job: ToolJob, ctx: ToolContext, mcp: McpRequest | None = None,
                  on_progress: ProgressCallback | None = None, on_elicit: ElicitCallback | None = None,
                  on_update: UpdateCallback | None = None) -> Any:
        if job.execution is Execution.MCP and mcp is not None:
            return await self.core.run(job, lambda: self.mcp.call(mcp.server, mcp.config, mcp.tool, job.kwargs,
                                                                  caller=mcp.caller(), on_progress=on_progress,
                                                                  on_elicit=on_elicit, on_update=on_update))
        if job.execution is Execution.CPU and tool.spec.sandbox:  # @tool(sandbox=True): a child inside the sandbox
            target = sandboxed_target(tool, ctx, job.timeout_s)
            return await self.core.run(job, lambda: call_target(target, job.kwargs))
        # troupe.runtime.secrets.get(NAME) works in the tool; the values it read are scrubbed from its result
        return await self.core.run(job, lambda: call_with(job.secrets, lambda: tool.call_validated(job.kwargs, ctx)))

    async def mcp_specs(self, server: str, config: McpServerConfig, session_id: str = "") -> list[ToolSpec]:
        return await self.mcp.list_tools(server, config, session_id)

    async def close(self) -> None:
        if self._mcp is not None:
            await self._mcp.close()

    def describe(self) -> dict[str, Any]:
        return {"scheduler": self.core.describe(), "mcp": self._mcp.describe() if self._mcp is not None else {}}


__all__ = [
    "MAX_SAMPLING_SESSIONS",
    "Dispatcher",
    "ElicitCallback",
    "LocalDispatcher",
    "McpRequest",
    "ProgressCallback",
    "SessionModels",
    "UpdateCallback",
    "manager_sampler",
    "mcp_request",
    "samples",
    "session_registration",
    "session_scoped",
]
