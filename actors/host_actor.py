"""The host actor: a thin async Ray shell over :class:`troupe.runtime.session.host.HostCore`."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import AsyncIterator
from typing import Any

import ray

from troupe.actors.gc_tuning import tune_gc
from troupe.actors.llm_actor import RemoteLLMFactory
from troupe.actors.llm_edge import install_ray_llm_edge
from troupe.actors.naming import NAMESPACE
from troupe.actors.ray_dispatch import RayDispatcher
from troupe.actors.ray_metrics import host_event_buffer
from troupe.actors.ship import RayShip
from troupe.actors.transport import RayTransport
from troupe.runtime.errors import TroupeError, UnknownAgentError
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.session.host import HostCore
from troupe.runtime.session.spec import SessionSpec
from troupe.runtime.session.supervisor import SessionResult
from troupe.runtime.session.workspace_history import RollbackResult
from troupe.runtime.session.workspace_live import rollback_here

COALESCE_S = 0.001
"""How long :meth:`HostActor.run_sessions` waits after a session ends for others to end with it."""


def _portable(error: BaseException) -> BaseException:
    """``error`` if it can cross to the caller, else a plain exception that says what it was."""
    if isinstance(error, asyncio.CancelledError):
        return TroupeError("the session was cancelled")
    try:
        pickle.dumps(error)
        return error
    except Exception:  # noqa: BLE001
        return TroupeError(f"{type(error).__name__}: {error}")


class HostActor:
    def __init__(self, event_log_name: str, scheduler_name: str,
                 recover: tuple[SessionSpec, list[str]] | None = None) -> None:
        """``recover``: the logical actors this (dedicated) host holds, restored from their
        checkpoints when Ray restarts it after a crash."""
        install_ray_llm_edge()
        self._log = ray.get_actor(event_log_name, namespace=NAMESPACE)
        # Metered: the events also feed the troupe_* metrics (actors/ray_metrics.py; TROUPE_METRICS=0: off).
        self._buffer = host_event_buffer(RayShip(self._log), lambda: self.core.sessions)
        self._transport = RayTransport(own_name=ray.get_runtime_context().get_actor_name())
        dispatcher = RayDispatcher(scheduler_name)
        # Network-backed models are called as llm:<agent> tasks on the node's LLM worker (actors/llm_actor.py).
        self.core = HostCore(sink=self._buffer, transport=self._transport, dispatcher=dispatcher,
                             llm_factory=RemoteLLMFactory(scheduler_name, dispatcher.node_id),
                             flush_events=self._buffer.flush)
        self._recover = recover if ray.get_runtime_context().was_current_actor_reconstructed else None
        self._restoring: asyncio.Lock | None = None
        self._restore_task: asyncio.Task[None] | None = None
        if self._recover is not None:
            # Restore now, not at the first call: an agent with unread messages must go on by itself.
            # (An async actor's __init__ runs on its event loop.)
            self._restore_task = asyncio.get_running_loop().create_task(self._ensure_restored())
        self._started = False
        self._packed: dict[SessionId, asyncio.Task[None]] = {}
        """Sessions running under :meth:`run_sessions`, for :meth:`cancel_packed`."""
        self._cancelled_early: dict[SessionId, bool] = {}
        """Sessions cancelled before their :meth:`run_sessions` call started here."""
        tune_gc()  # last: what exists now (imports, setup) is frozen out of later collections

    def _ensure_started(self) -> None:
        # The buffer's flusher must start on the actor's own event loop, i.e. inside a method.
        if not self._started:
            self._buffer.start()
            self._started = True

    async def _ensure_restored(self) -> None:
        """After a restart: bring the logical actors back before serving any call (Ray re-sends the
        calls that were in flight to the old instance, and they must find them)."""
        self._ensure_started()
        if self._recover is None:
            return
        if self._restoring is None:
            self._restoring = asyncio.Lock()
        async with self._restoring:
            if self._recover is not None:
                spec, names = self._recover
                await self.core.start_session(spec, names, restore=True)
                await self.core.begin(spec.session_id)  # the session's other hosts are up: go on
                self._recover = None

    async def start_session(self, spec: SessionSpec, names: list[str], restore: bool = False) -> list[str]:
        await self._ensure_restored()
        return await self.core.start_session(spec, names, restore=restore)

    async def begin(self, session_id: SessionId) -> None:
        """Set restored logical actors going (after every host of their session is restored)."""
        await self.core.begin(session_id)

    async def start_sessions(self, specs: list[SessionSpec]) -> int:
        """Start whole sessions here (packed placement); one call for many keeps sweeps cheap."""
        self._ensure_started()
        for spec in specs:
            await self.core.start_session(spec, spec.all_names())
        return len(specs)

    async def deliver(self, envelope: Envelope, agent: str | None = None) -> bool:
        """Deliver to ``agent`` (default: the envelope's recipient) of the envelope's session.

        One argument in the common case: each Ray call argument is serialised on its own.
        """
        await self._ensure_restored()
        recipient = AgentId(agent) if agent else envelope.recipient
        if recipient is None:
            raise UnknownAgentError("a message needs a recipient or a topic", message_id=envelope.id)
        return await self.core.deliver(envelope.session_id, recipient, envelope)

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        await self._ensure_restored()
        return await self.core.call(session_id, target, method, kwargs)

    async def tool_progress(self, key: str, note: dict[str, Any]) -> None:
        """A progress notification of an MCP call this host's agent is making (from the node's MCP actor)."""
        self.core.dispatcher.progress(key, note)  # type: ignore[attr-defined]  # a RayDispatcher here

    async def tool_update(self, note: dict[str, Any]) -> None:
        """An update of an MCP resource an agent here subscribed to (from the node's MCP actor): a notice in its
        mailbox and an ``mcp.resource_updated`` event."""
        await self.core.dispatcher.update(note)  # type: ignore[attr-defined]  # a RayDispatcher here

    async def tool_elicit(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        """An elicitation request of an MCP call this host's agent is making (from the node's MCP actor): the
        calling session answers it, and the answer goes back to the server."""
        return await self.core.dispatcher.elicit(key, request)  # type: ignore[attr-defined]  # a RayDispatcher here

    async def workspace_rollback(self, session_id: SessionId, to: str | None = None, by: str = "api",
                                 timeout_s: float = 60.0) -> RollbackResult | None:
        """Roll back the workspace of a session held here, on this node (``None``: not held here)."""
        await self._ensure_restored()
        return await rollback_here(self.core, session_id, to, by=by, timeout_s=timeout_s)

    async def run_session(self, spec: SessionSpec, text: str, timeout: float | None = None) -> SessionResult:
        """A whole session in one call (sweeps); its events reach the log with the next flush."""
        self._ensure_started()
        try:
            return await self.core.run_session(spec, text, timeout)
        finally:
            self._transport.forget(spec.session_id)

    async def run_sessions(self, batch: list[tuple[SessionSpec, str, float | None]],
                           ) -> AsyncIterator[list[tuple[int, SessionResult | None, BaseException | None]]]:
        """Many whole sessions from one call (sweeps): a streaming generator that yields
        ``(index, result, error)`` of the ones that finished since its last yield, so a result is
        back as soon as its session ends while the per-call cost of Ray is paid once per batch."""
        self._ensure_started()
        finished: list[tuple[int, SessionResult | None, BaseException | None]] = []
        wake = asyncio.Event()

        async def one(index: int, spec: SessionSpec, text: str, timeout: float | None) -> None:
            try:
                if self._cancelled_early.pop(spec.session_id, False):
                    raise asyncio.CancelledError  # its client gave up before this call started
                finished.append((index, await self.core.run_session(spec, text, timeout), None))
            except BaseException as e:  # noqa: BLE001  (a cancelled sample is reported, not raised)
                finished.append((index, None, _portable(e)))
            finally:
                self._packed.pop(spec.session_id, None)
                self._transport.forget(spec.session_id)
                wake.set()

        for i, (spec, text, timeout) in enumerate(batch):
            self._packed[spec.session_id] = asyncio.get_running_loop().create_task(one(i, spec, text, timeout))
        remaining = len(batch)
        while remaining:
            await wake.wait()
            await asyncio.sleep(COALESCE_S)  # sessions ending together go back together
            wake.clear()
            out, finished[:] = finished[:], []
            remaining -= len(out)
            yield out

    async def cancel_packed(self, session_id: SessionId) -> bool:
        """Cancel one session started by :meth:`run_sessions` (its client stopped waiting)."""
        task = self._packed.get(session_id)
        if task is None:  # not started yet: calls to an async actor may start out of order
            self._cancelled_early[session_id] = True
            while len(self._cancelled_early) > 10_000:
                self._cancelled_early.pop(next(iter(self._cancelled_early)))
            return False
        task.cancel()
        return True

    async def close_session(self, session_id: SessionId) -> None:
        """Stop the session's logical actors here and hand every event they emitted to the log."""
        await self.core.drain(session_id)
        await self.core.close_session(session_id)
        self._transport.forget(session_id)
        await self._buffer.flush()

    async def flush(self) -> None:
        await self._buffer.flush()

    async def probe_send(self, session_id: SessionId, sender: AgentId, recipient: AgentId, n: int) -> float:
        self._ensure_started()
        return await self.core.probe_send(session_id, sender, recipient, n)

    async def rss_bytes(self) -> int:
        """Resident memory of this host process."""
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def debug_tasks(self) -> list[str]:
        """Stacks of every coroutine running in this host (for diagnosing a stuck session)."""
        import asyncio
        import io

        out = []
        for task in asyncio.all_tasks():
            buf = io.StringIO()
            task.print_stack(limit=12, file=buf)
            out.append(buf.getvalue())
        return out

    async def describe(self) -> dict[str, Any]:
        await self._ensure_restored()
        return {"pid": os.getpid(), "sessions": self.core.describe(), "events_shipped": self._buffer.shipped}


__all__ = ["HostActor"]
