"""The Ray dispatcher: inline tools run in the agent's host, everything else goes to the scheduler actor."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ray
from ray.actor import ActorHandle

from troupe.actors.naming import NAMESPACE
from troupe.actors.transport import remote_call
from troupe.runtime.agent.dispatch import ElicitCallback, McpRequest, ProgressCallback, UpdateCallback
from troupe.runtime.agent.scheduler import SchedulerCore, ToolJob
from troupe.runtime.config import McpServerConfig, ModelProfile
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import call_with
from troupe.tools.context import ToolContext
from troupe.tools.sandbox import sandboxed_target
from troupe.tools.spec import Execution, Tool, ToolSpec


class RayDispatcher:
    def __init__(self, scheduler_name: str) -> None:
        self.scheduler_name = scheduler_name
        self._scheduler: ActorHandle | None = None
        self.local = SchedulerCore()
        """Inline tools (session services, the workspace) run here, in the agent's process."""
        self.node_id = ray.get_runtime_context().get_node_id()
        self._mcp: ActorHandle | None = None
        """This node's MCP actor (asked of the scheduler once)."""
        self._handle: ActorHandle | None = None
        self._progress: dict[str, ProgressCallback] = {}
        """The ``on_progress`` of each MCP call in flight, by idempotency key."""
        self._elicit: dict[str, ElicitCallback] = {}
        """The ``on_elicit`` of each MCP call in flight, by idempotency key."""
        self._updates: dict[tuple[str, str], UpdateCallback] = {}
        """The ``on_update`` of each agent here with resource subscriptions, by ``(session id, agent)``: until its
        session closes (the node's MCP actor tells :meth:`update` of each update)."""

    @property
    def scheduler(self) -> ActorHandle:
        if self._scheduler is None:
            self._scheduler = ray.get_actor(self.scheduler_name, namespace=NAMESPACE)
        return self._scheduler

    async def run(self, tool: Tool, job: ToolJob, ctx: ToolContext, mcp: McpRequest | None = None,
                  on_progress: ProgressCallback | None = None, on_elicit: ElicitCallback | None = None,
                  on_update: UpdateCallback | None = None) -> Any:
        if job.execution is Execution.INLINE:
            return await self.local.run(job, lambda: call_with(job.secrets, lambda: tool.call_validated(job.kwargs, ctx)))
        job = job.model_copy(update={"node_id": self.node_id})
        if job.execution is Execution.MCP and mcp is not None:
            if on_update is not None:
                self._updates[(mcp.session_id, mcp.agent)] = on_update
            return await self._run_mcp(job, mcp, on_progress, on_elicit)
        # a cpu tool with sandbox=True travels as a SandboxedCall: its Ray task runs it in a sandboxed child
        ref: Any = self.scheduler.run.remote(job, sandboxed_target(tool, ctx, job.timeout_s))
        try:
            return await remote_call(ref)
        except asyncio.CancelledError:
            # The turn was cancelled: so is the call, wherever it runs. Not recursively: the
            # scheduler cancels what it started itself, and a Ray task cancelled twice can take the
            # second KeyboardInterrupt inside its own clean-up, or inside Ray's task handler, which
            # then kills its worker.
            ray.cancel(ref, recursive=False)
            raise

    async def _run_mcp(self, job: ToolJob, mcp: McpRequest, on_progress: ProgressCallback | None,
                       on_elicit: ElicitCallback | None = None) -> Any:
        """One hop: the node's MCP actor runs the call (under its own caps, timeout and retries) and sends each
        progress notification back to this host actor as it arrives (:meth:`progress`)."""
        if self._mcp is None:
            self._mcp = await remote_call(self.scheduler.mcp_actor.remote(self.node_id))
        reply_to = self._own_handle() if on_progress is not None else None
        key = job.idempotency_key
        if reply_to is not None:
            self._progress[key] = on_progress  # type: ignore[assignment]
            if on_elicit is not None:  # the server's elicitation requests come back here too (:meth:`elicit`)
                self._elicit[key] = on_elicit
        ref: Any = self._mcp.run.options(name=f"tool:{job.tool}").remote(job, mcp, reply_to)
        try:
            return await remote_call(ref)
        except asyncio.CancelledError:
            ray.cancel(ref, recursive=False)  # a cancelled turn: so is the call, on the node's MCP actor
            raise
        finally:
            if reply_to is not None:
                self._progress.pop(key, None)  # a note that comes later is in the result's progress
                self._elicit.pop(key, None)

    def progress(self, key: str, note: dict[str, Any]) -> None:
        """A progress notification of a call in flight (``key``: its idempotency key), from the node's MCP actor."""
        callback = self._progress.get(key)
        if callback is not None:
            callback(note)

    async def elicit(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        """An elicitation request of a call in flight (``key``), from the node's MCP actor: the calling session
        answers it (declined when the call has no one to answer)."""
        callback = self._elicit.get(key)
        if callback is None:
            return {"action": "decline", "by": "nobody", "reason": "the call has nobody to answer elicitation requests"}
        return await callback(request)

    async def update(self, note: dict[str, Any]) -> None:
        """An update of a resource an agent here subscribed to (from the node's MCP actor): its notice and event."""
        callback = self._updates.get((str(note.get("session_id", "")), str(note.get("agent", ""))))
        if callback is not None:
            await callback(note)

    def _own_handle(self) -> ActorHandle | None:
        """The host actor this dispatcher runs in (where progress is sent back); ``None`` outside an actor."""
        if self._handle is None:
            try:
                self._handle = ray.get_runtime_context().current_actor
            except RuntimeError:
                return None
        return self._handle

    async def open_session(self, session_id: str, models: Mapping[str, ModelProfile],
                           secrets: Mapping[str, SecretRef] | None = None) -> None:
        await remote_call(self.scheduler.open_session.remote(session_id, dict(models), dict(secrets or {})))

    async def close_session(self, session_id: str) -> None:
        for who in [who for who in self._updates if who[0] == session_id]:
            del self._updates[who]
        await remote_call(self.scheduler.close_session.remote(session_id))

    async def close_idle_mcp(self) -> int:
        return int(await remote_call(self.scheduler.close_idle_mcp.remote()))

    async def mcp_specs(self, server: str, config: McpServerConfig, session_id: str = "") -> list[ToolSpec]:
        return await remote_call(self.scheduler.mcp_specs.remote(server, config, self.node_id, session_id))

    async def close(self) -> None:
        """The scheduler belongs to the runtime, not to this host: nothing to release here."""


__all__ = ["RayDispatcher"]
