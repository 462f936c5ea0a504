"""Run a whole session in this process: one host, no Ray. For unit tests and quick notebooks.

It writes the same lake, through the same event log core, as the Ray backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from troupe.runtime.config import Placement
from troupe.runtime.eventlog.buffer import EventBuffer
from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.events import Event
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.otel.live import attach_live_export
from troupe.runtime.session.host import HostCore
from troupe.runtime.session.spec import SessionSpec
from troupe.runtime.session.workspace_history import RollbackResult
from troupe.runtime.session.workspace_live import rollback_here
from troupe.runtime.storage.checkpoint import checkpoint_location
from troupe.tools.registry import ToolRegistry


class LocalBackend:
    def __init__(self, lake: str | Path, *, registry: ToolRegistry | None = None, checkpoints: bool | str = False,
                 otel: OtelConfig | None = None, **host_kwargs: Any) -> None:
        self.log = EventLogCore(lake)
        self.otel = attach_live_export(self.log, otel)  # spans over OTLP as sessions finish ($TROUPE_OTEL_ENDPOINT)
        self.lake = self.log.lake  # an absolute local path, or the pyarrow.fs URI as given
        self.checkpoints = checkpoint_location(self.lake, checkpoints)
        self.buffer = EventBuffer(self.log.append)
        self.host = HostCore(sink=self.buffer, registry=registry, flush_events=self.buffer.flush, **host_kwargs)
        self._started = False

    def checkpoints_for(self, placement: Placement) -> str | None:
        return self.checkpoints  # one host holds the whole session: every placement can be restored

    async def start_session(self, spec: SessionSpec, *, restore: bool = False) -> None:
        if not self._started:
            self.buffer.start()
            self._started = True
        if not restore:
            self.log.open_sessions([str(spec.session_id)])  # stream positions from 1, no look at the lake
        await self.host.start_session(spec, spec.all_names(), restore=restore)
        if restore:
            await self.host.begin(spec.session_id)

    async def start_sessions(self, specs: list[SessionSpec]) -> None:
        for spec in specs:
            await self.start_session(spec)

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool:
        return await self.host.deliver(session_id, agent, envelope)

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        return await self.host.call(session_id, target, method, kwargs)

    async def subscribe(self, session_id: SessionId) -> None:
        self.log.subscribe(str(session_id))

    async def tail(self, session_id: SessionId) -> AsyncIterator[Event]:
        cursor = 0
        while True:
            await self.buffer.flush()
            rows, cursor = await self.log.read(str(session_id), cursor, 0.05)
            for row in rows:
                yield Event.model_validate(row)

    async def close_session(self, session_id: SessionId, *, compact: bool = True) -> None:
        spec = self.host.sessions.get(session_id)
        await self.host.drain(session_id)
        await self.host.close_session(session_id)
        await self.buffer.flush()
        if spec is not None and compact:
            await self.log.finish_run(str(spec.spec.run_id))
        self.log.unsubscribe(str(session_id))

    async def run_session(self, spec: SessionSpec, text: str, timeout: float | None = None) -> Any:
        return await self.host.run_session(spec, text, timeout)

    async def workspace_rollback(self, session_id: SessionId, to: str | None = None, *, by: str = "api",
                                 timeout_s: float = 60.0) -> RollbackResult | None:
        """Roll back a live session's workspace through its host (``None``: not open here)."""
        return await rollback_here(self.host, session_id, to, by=by, timeout_s=timeout_s)

    async def flush(self) -> None:
        await self.buffer.flush()
        await self.log.flush()

    async def finish_run(self, run_id: str) -> None:
        await self.flush()
        await self.log.finish_run(run_id)

    async def close_idle_mcp(self) -> int:
        return await self.host.dispatcher.close_idle_mcp()

    async def shutdown(self) -> None:
        from troupe.runtime.llm.local.provider import stop_local_servers

        await self.host.close()
        await self.buffer.close()
        await self.log.close()
        stop_local_servers()


__all__ = ["LocalBackend"]
