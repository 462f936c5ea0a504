"""The session services an agent on a host reaches: calls, messages, children (through its host)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from troupe.runtime.agent.core import control_message
from troupe.runtime.config import AgentSpec
from troupe.runtime.ids import AgentId, SessionId, current_id_scope
from troupe.runtime.messages import ControlOp, Envelope
from troupe.runtime.session.durable import REQUEST_ID

if TYPE_CHECKING:
    from troupe.runtime.session.host import HostCore


class HostServices:
    """The :class:`~troupe.tools.context.SessionServices` an agent on this host uses."""

    def __init__(self, host: HostCore, session_id: SessionId) -> None:
        self._host = host
        self._session_id = session_id

    async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
        scope = current_id_scope()
        if scope is not None:  # in a turn or a tool call: a replay after a crash sends the same id
            kwargs[REQUEST_ID] = scope.next_hex()
        return await self._host.call(self._session_id, AgentId(target), method, kwargs)

    async def send(self, envelope: Envelope) -> None:
        await self._host.send(envelope)

    async def spawn_child(self, spec: AgentSpec, *, parent: AgentId) -> AgentId:
        return await self._host.spawn_child(self._session_id, spec, parent=parent)

    async def terminate(self, agent: AgentId) -> None:
        await self._host.deliver(self._session_id, agent, control_message(self._session_id, agent, ControlOp.TERMINATE))

    def members(self) -> Sequence[AgentId]:
        held = self._host.sessions[self._session_id]
        return [*held.spec.members(), *(g for g in held.guests if "." in g)]


__all__ = ["HostServices"]
