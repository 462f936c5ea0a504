"""The session services an agent on a host reaches: calls, messages, children (through its host)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from troupe.runtime.agent.core import control_message
from troupe.runtime.config import AgentSpec
from troupe.runtime.ids import AgentId, SessionId, current_id_scope
from troupe.runtime.messages import CURRENT_TURN, TURN_KWARG, ControlOp, Envelope, MessageKind, Trace
from troupe.runtime.session.durable import REQUEST_ID

if TYPE_CHECKING:
    from troupe.runtime.session.host import HostCore
    from troupe.runtime.session.spec import SessionSpec


class HostServices:
    """The :class:`~troupe.tools.context.SessionServices` an agent on this host uses."""

    def __init__(self, host: HostCore, session_id: SessionId) -> None:
        self._host = host
        self._session_id = session_id

    async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
        scope = current_id_scope()
        if scope is not None:  # in a turn or a tool call: a replay after a crash sends the same id
            kwargs[REQUEST_ID] = scope.next_hex()
        if (turn := CURRENT_TURN.get()) is not None:
            kwargs[TURN_KWARG] = turn
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


def notifier(host: HostCore, spec: SessionSpec, sender: AgentId) -> Callable[[AgentId, MessageKind, str, dict[str, Any]], None]:
    """How a service of ``host`` (the blackboard, the task registry) sends its notices: stamped with
    the turn of the call that caused them; held back until the service's checkpoint holds the change."""

    def notify(recipient: AgentId, kind: MessageKind, content: str, data: dict[str, Any]) -> None:
        env = Envelope(session_id=spec.session_id, sender=sender, recipient=AgentId(recipient), kind=kind,
                       content=content, data=data,
                       trace=Trace(run_id=spec.run_id, task_id=data.get("task_id"), turn=CURRENT_TURN.get()))
        held = host.sessions.get(spec.session_id)
        if held is not None and held.durable is not None:
            held.durable.hold(sender, env)  # sent by call() once the sender's checkpoint holds it
            return
        host._spawn_bg(host._deliver_quietly(env), spec.session_id)

    return notify


__all__ = ["HostServices", "notifier"]
