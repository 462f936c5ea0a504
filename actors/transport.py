"""Reaching logical actors on other hosts through Ray, with Troupe's own errors on the far side."""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError, RayTaskError

from troupe.actors.naming import NAMESPACE, dedicated_name
from troupe.runtime.errors import TroupeError, UnknownAgentError
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.session.spec import root_of


def unwrap(error: RayTaskError) -> BaseException:
    """The exception raised on the far side when it is ours (or a timeout), else Ray's."""
    cause = error.cause
    if isinstance(cause, (TroupeError, TimeoutError)):
        return cause
    return error


def deliver_ref(handle: ActorHandle, envelope: Envelope, agent: str) -> Any:
    """Call a host's ``deliver``: the envelope alone when it names its recipient (one argument to
    serialise instead of three), else with the agent it is for (a broadcast copy, a USER alias)."""
    if envelope.recipient == agent:
        return handle.deliver.remote(envelope)
    return handle.deliver.remote(envelope, str(agent))


async def remote_call(ref: Any) -> Any:
    try:
        return await ref
    except RayTaskError as e:
        raise unwrap(e) from None


class RayTransport:
    """Finds a dedicated logical actor by its Ray name (``<session>/<root agent>``)."""

    def __init__(self, own_name: str | None = None) -> None:
        self._handles: dict[str, ActorHandle] = {}
        self.own_name = own_name
        """This host's own actor name: routing there would loop back forever."""

    def handle(self, session_id: SessionId, agent: AgentId) -> ActorHandle:
        name = dedicated_name(session_id, root_of(agent))
        if name == self.own_name:
            raise UnknownAgentError(f"{agent!r} is not on its own host {name!r} (gone or never started)", agent=agent)
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                raise UnknownAgentError(f"no actor {agent!r} in session {session_id} (no Ray actor {name!r})",
                                        agent=agent) from None
            self._handles[name] = handle
        return handle

    def forget(self, session_id: SessionId) -> None:
        prefix = f"{session_id}/"
        for name in [n for n in self._handles if n.startswith(prefix)]:
            del self._handles[name]

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool:
        try:
            return await remote_call(deliver_ref(self.handle(session_id, agent), envelope, agent))
        except RayActorError as e:
            raise UnknownAgentError(f"agent {agent!r} of session {session_id} is gone: {e}", agent=agent) from None

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        return await remote_call(self.handle(session_id, target).call.remote(str(session_id), str(target), method, kwargs))


__all__ = ["RayTransport", "remote_call", "unwrap"]
