"""The scheduler actor and the per-node actors it fans tool calls out to.

One :class:`SchedulerActor` per runtime holds the :class:`~troupe.runtime.agent.scheduler.SchedulerCore`, so
its global and per-tool caps hold across the whole cluster. For each call it picks where to run:

* ``io``: a coroutine on the calling node's :class:`ToolWorkerActor` (async, no CPU slot, many
  calls at once; sync functions run in its thread pool);
* ``cpu``: a Ray task named ``tool:<name>`` with the resources the tool declares, wherever the
  cluster has them (refused at once when no node has them);
* ``mcp``: the calling node's :class:`McpNodeActor`, which keeps one connection per server. An agent's
  host calls it directly (:meth:`SchedulerActor.mcp_actor` hands out its handle), so an MCP call is one hop;
  its caps, timeout, retries and deduplication are that actor's own core (per node, where the connection is).

Every call it starts is a Ray task (or actor task) named ``tool:<name>``, so the dashboard's task
list says which tool ran. It also owns each node's :class:`~troupe.actors.llm_actor.LLMWorkerActor` (hosts ask
:meth:`SchedulerActor.llm_worker` for theirs), so every per-node actor is released with it.

A cancelled call cancels what it started (``ray.cancel``), so a cancelled turn stops its tools. A
Ray task is first asked to stop (a KeyboardInterrupt, which Python delivers only between bytecodes:
a task blocked in one long C call, a ``time.sleep`` or a socket read, does not see it until that
returns); one still running :data:`FORCE_AFTER_S` later is killed with its worker process, so a
cancelled ``cpu`` call stops within a bounded time whatever it is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayError

from troupe.actors.llm_edge import install_ray_llm_edge
from troupe.actors.naming import LLM_WORKER, MCP_NODE, TOOL_WORKER, node_actor_name
from troupe.actors.options import actor_class, node_actor_options, task_options
from troupe.actors.transport import remote_call
from troupe.runtime.agent.dispatch import McpRequest, SessionModels, manager_sampler
from troupe.runtime.agent.scheduler import DEFAULT_MAX_CONCURRENCY, SchedulerCore, ToolJob
from troupe.runtime.config import McpServerConfig, ModelProfile
from troupe.runtime.errors import ToolUnavailableError
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import call_with, register_all, scrub, tool_call
from troupe.tools.spec import Execution, ToolSpec, call_target

WORKER_THREADS = 256
"""Threads for sync I/O tools on a worker: they wait, they don't compute."""
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
_NODES_TTL_S = 10.0
FORCE_AFTER_S = 2.0
"""How long a cancelled Ray task may take to stop by itself (its ``finally`` blocks run) before it is
killed with its worker process."""


def _use_big_thread_pool() -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=WORKER_THREADS))


class ToolWorkerActor:
    """Runs I/O-bound tools as coroutines; one per node, shared by every agent there."""

    def __init__(self) -> None:
        self._ready = False

    async def run(self, target: Callable[..., Any] | type, kwargs: dict[str, Any],
                  secrets: dict[str, SecretRef] | None = None) -> Any:
        """One call; ``secrets`` (the session's references) is what ``troupe.runtime.secrets.get``
        resolves against in the tool, and the values it read are scrubbed from its result here."""
        if not self._ready:
            _use_big_thread_pool()
            self._ready = True
        return await call_with(secrets or {}, lambda: call_target(target, kwargs))

    async def pid(self) -> int:
        return os.getpid()


class McpNodeActor:
    """This node's MCP connections (one per server), shared by every agent on the node."""

    def __init__(self) -> None:
        from troupe.tools.mcp import McpManager

        install_ray_llm_edge()  # sampling builds model clients here
        self._models = SessionModels()
        self.manager = McpManager(sampler=manager_sampler(self._models.of))
        self.core = SchedulerCore()
        """The caps, timeouts, retries and deduplication of the MCP calls made on this node (one hop from the
        agent's host: a call does not pass through the scheduler actor)."""

    async def register_models(self, sessions: dict[str, dict[str, ModelProfile]]) -> None:
        """Sessions' model profiles, for sampling (pushed by the scheduler, once per session)."""
        for session_id, models in sessions.items():
            self._models.register(session_id, models)

    async def forget_models(self, session_id: str) -> None:
        self._models.forget(session_id)

    async def close_session(self, session_id: str) -> int:
        """Forget the session's profiles and close its own (``scope: session``) connections."""
        self._models.forget(session_id)
        return await self.manager.close_session(session_id)

    async def close_idle(self) -> int:
        return await self.manager.close_idle()

    async def run(self, job: ToolJob, request: McpRequest, reply_to: ActorHandle | None = None) -> Any:
        """One call of an agent's host, under this node's caps, timeout and retries (:attr:`core`). Each
        progress notification goes to ``reply_to`` (the calling host actor) as it arrives:
        ``reply_to.tool_progress(job.idempotency_key, note)``, fire and forget; each elicitation request is
        answered by it (``reply_to.tool_elicit``: the calling session); a ``subscribe_resource`` call's updates go
        to it too, for as long as the subscription lasts (``reply_to.tool_update``)."""
        on_progress = on_elicit = on_update = None
        if reply_to is not None:
            def on_progress(note: dict[str, Any], key: str = job.idempotency_key) -> None:
                reply_to.tool_progress.remote(key, note)

            async def on_elicit(request: dict[str, Any], key: str = job.idempotency_key) -> dict[str, Any]:
                return await remote_call(reply_to.tool_elicit.remote(key, request))  # the session answers

            if request.tool == "subscribe_resource":  # specs.SUBSCRIBE
                def on_update(note: dict[str, Any]) -> None:
                    reply_to.tool_update.remote(note)  # fire and forget: the subscriber's host records and delivers

        return await self.core.run(job, lambda: self.manager.call(request.server, request.config, request.tool,
                                                                  job.kwargs, caller=request.caller(),
                                                                  on_progress=on_progress, on_elicit=on_elicit,
                                                                  on_update=on_update))

    async def list_tools(self, server: str, config: McpServerConfig, session_id: str = "") -> list[ToolSpec]:
        return await self.manager.list_tools(server, config, session_id)

    async def close(self) -> None:
        await self.manager.close()

    async def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "sampling_sessions": len(self._models), "scheduler": self.core.describe(),
                **self.manager.describe()}


def _run_cpu_tool(target: Callable[..., Any] | type, kwargs: dict[str, Any],
                  secrets: dict[str, SecretRef] | None = None) -> Any:
    """Body of a ``cpu`` tool's Ray task: ``troupe.runtime.secrets.get`` resolves against ``secrets``
    (the session's references) in it, and the values it read are scrubbed from its result here."""
    from troupe.tools.spec import _callable_of

    fn = _callable_of(target)
    with tool_call(secrets or {}) as read:
        value = fn(**kwargs)
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)  # runs in a copy of this context: get() works there too
    return scrub(value, read)


async def _force_if_running(ref: ray.ObjectRef) -> None:
    """Kill a cancelled task's worker process if the task has not stopped within :data:`FORCE_AFTER_S`."""
    try:
        await asyncio.wait_for(ref, FORCE_AFTER_S)
    except TimeoutError:
        ray.cancel(ref, force=True)
    except RayError:
        pass  # it stopped: cancelled, or failed on its own


def _ray_demand(resources: dict[str, float]) -> dict[str, float]:
    demand = {_RAY_NAMES.get(k, k): float(v) for k, v in resources.items() if v}
    demand.setdefault("CPU", 1.0)
    return demand


class SchedulerActor:
    def __init__(self, max_concurrency: int = DEFAULT_MAX_CONCURRENCY, name_prefix: str = "tools") -> None:
        self.core = SchedulerCore(max_concurrency=max_concurrency)
        self.prefix = name_prefix
        self._workers: dict[str, ActorHandle] = {}
        self._mcp: dict[str, ActorHandle] = {}
        self._llm: dict[str, ActorHandle] = {}
        self._nodes: tuple[float, list[dict[str, float]]] = (0.0, [])
        self._cpu_task = ray.remote(_run_cpu_tool)
        self._forcing: set[asyncio.Task[None]] = set()
        """Cancelled Ray tasks being watched, to be killed if they do not stop by themselves."""
        self._models = SessionModels()
        """Sessions' model profiles, for MCP sampling (registered once per session)."""

    # --- per-node actors --------------------------------------------------------------------
    def _node(self, node_id: str | None) -> str:
        return node_id or ray.get_runtime_context().get_node_id()

    def _worker(self, node_id: str | None) -> ActorHandle:
        node = self._node(node_id)
        if node not in self._workers:
            self._workers[node] = actor_class(ToolWorkerActor, node_actor_options(node_actor_name(self.prefix, TOOL_WORKER, node), node)).remote()
        return self._workers[node]

    def _mcp_actor(self, node_id: str | None) -> ActorHandle:
        node = self._node(node_id)
        if node not in self._mcp:
            self._mcp[node] = actor_class(McpNodeActor, node_actor_options(node_actor_name(self.prefix, MCP_NODE, node), node)).remote()
            if len(self._models):  # a new node's MCP actor learns the sessions registered so far
                self._mcp[node].register_models.remote(self._models.all())
        return self._mcp[node]

    async def open_session(self, session_id: str, models: dict[str, ModelProfile],
                           secrets: dict[str, SecretRef] | None = None) -> None:
        """Register a session's profiles for sampling (here, and with every node's MCP actor), and its
        secrets here (read on this node, where it can: the tool results this actor records are redacted)."""
        register_all(secrets or {})
        if models:
            self._models.register(session_id, models)
            await asyncio.gather(*(h.register_models.remote({session_id: models}) for h in self._mcp.values()))

    async def close_session(self, session_id: str) -> None:
        self._models.forget(session_id)
        await asyncio.gather(*(h.close_session.remote(session_id) for h in self._mcp.values()),
                             return_exceptions=True)

    async def close_idle_mcp(self) -> int:
        """Close every node's idle node-scoped MCP connections (a sweep, at its end); returns how many."""
        closed: list[Any] = await asyncio.gather(*(h.close_idle.remote() for h in self._mcp.values()),
                                                 return_exceptions=True)
        return sum(n for n in closed if isinstance(n, int))

    async def llm_worker(self, node_id: str | None = None) -> ActorHandle:
        """The node's LLM worker (created on first ask; this actor owns it and releases it on close)."""
        from troupe.actors.llm_actor import LLMWorkerActor

        node = self._node(node_id)
        if node not in self._llm:
            self._llm[node] = actor_class(LLMWorkerActor, node_actor_options(node_actor_name(self.prefix, LLM_WORKER, node), node)).remote()
        return self._llm[node]

    def _check_feasible(self, job: ToolJob) -> None:
        at, nodes = self._nodes
        if time.monotonic() - at > _NODES_TTL_S:
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            self._nodes = (time.monotonic(), nodes)
        demand = _ray_demand(job.resources)
        if not any(all(node.get(k, 0.0) >= v for k, v in demand.items()) for node in nodes):
            have = sorted({k for node in nodes for k in node if not k.startswith("node:")})
            raise ToolUnavailableError(
                f"tool {job.tool!r} needs {demand}, which no node of this cluster has (resources here: {have}); "
                "use another tool", tool=job.tool)

    # --- calls ------------------------------------------------------------------------------
    async def run(self, job: ToolJob, target: Any) -> Any:
        """Run one ``io`` or ``cpu`` call under the caps, timeout and retries; ``target`` is the tool's function
        or class. (``mcp`` calls go from the agent's host to the node's MCP actor: :meth:`mcp_actor`.)"""
        return await self.core.run(job, lambda: self._attempt(job, target))

    async def mcp_actor(self, node_id: str | None = None) -> ActorHandle:
        """The node's MCP actor (created on first ask): agents' hosts call it directly, one hop per MCP call."""
        return self._mcp_actor(node_id)

    async def _attempt(self, job: ToolJob, target: Any) -> Any:
        ref: Any
        if job.execution is Execution.IO:
            ref = self._worker(job.node_id).run.options(name=f"tool:{job.tool}").remote(target, job.kwargs, job.secrets)
        elif job.execution is Execution.CPU:
            self._check_feasible(job)
            ref = self._cpu_task.options(**task_options(job)).remote(target, job.kwargs, job.secrets)
        else:  # inline: in the agent's process; mcp: on the node's MCP actor, called by the agent's host
            raise ValueError(f"tool {job.tool!r}: {job.execution} calls do not run on the scheduler actor")
        try:
            return await remote_call(ref)
        except asyncio.CancelledError:
            ray.cancel(ref)  # a timeout or a cancelled turn: stop the work, not just the wait
            if job.execution is Execution.CPU:
                task = asyncio.get_running_loop().create_task(_force_if_running(ref))
                self._forcing.add(task)
                task.add_done_callback(self._forcing.discard)
            raise

    async def mcp_specs(self, server: str, config: McpServerConfig, node_id: str | None = None,
                        session_id: str = "") -> list[ToolSpec]:
        return await remote_call(self._mcp_actor(node_id).list_tools.remote(server, config, session_id))

    async def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), **self.core.describe(), "io_workers": len(self._workers), "mcp_nodes": len(self._mcp),
                "llm_workers": len(self._llm)}

    async def mcp_describe(self) -> dict[str, Any]:
        return {node: await h.describe.remote() for node, h in self._mcp.items()}

    async def close(self) -> None:
        """Close every MCP connection (their stdio servers exit), then release the node actors."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(h.close.remote() for h in self._mcp.values()),
                                                  return_exceptions=True), 20)
        for handle in (*self._mcp.values(), *self._workers.values(), *self._llm.values()):
            ray.kill(handle, no_restart=True)
        self._mcp.clear()
        self._workers.clear()
        self._llm.clear()


__all__ = ["McpNodeActor", "SchedulerActor", "ToolWorkerActor"]
