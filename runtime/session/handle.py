"""The client-facing session handle: send input, stream events, await the result, cancel.

A :class:`Backend` decides where the logical actors run: in this process
(:class:`troupe.runtime.session.local_backend.LocalBackend`, no Ray) or on a Ray cluster
(:class:`troupe.actors.backend.RayBackend`). The session code is the same for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from troupe.runtime.agent.core import control_message, user_message
from troupe.runtime.config import Placement
from troupe.runtime.errors import UnknownAgentError
from troupe.runtime.events import Event
from troupe.runtime.ids import BLACKBOARD, SUPERVISOR, TASKS, AgentId, SessionId, unique_hex
from troupe.runtime.messages import ControlOp, Envelope
from troupe.runtime.session.spec import SessionSpec
from troupe.runtime.session.supervisor import SessionResult
from troupe.runtime.session.turn_cancel import TurnCancel, cancel_turn


class Backend(Protocol):
    lake: str
    checkpoints: str | None
    """The checkpoint store's location, or ``None`` when sessions are not checkpointed."""

    def checkpoints_for(self, placement: Placement) -> str | None:
        """Where a session of this placement is checkpointed (``None``: it is not)."""
        ...

    async def start_session(self, spec: SessionSpec, *, restore: bool = False) -> None:
        """Start the session's actors; ``restore`` brings them back from their checkpoints."""
        ...

    async def start_sessions(self, specs: list[SessionSpec]) -> None:
        """Start many sessions at once (sweeps): one round trip per host, not per session."""
        ...

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool: ...

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any: ...

    def tail(self, session_id: SessionId) -> AsyncIterator[Event]:
        """Events of a session as they are logged (subscribe before starting it)."""
        ...

    async def subscribe(self, session_id: SessionId) -> None: ...

    async def close_session(self, session_id: SessionId, *, compact: bool = True) -> None:
        """Stop the session's actors and hand every event it emitted to the log; ``compact``
        also merges its run's files (a sweep's many sessions share a run: it compacts once, at the end)."""
        ...

    async def run_session(self, spec: SessionSpec, text: str, timeout: float | None = None) -> SessionResult:
        """Run a packed session start to finish in one call (no handle, no live events)."""
        ...

    async def flush(self) -> None:
        """Write every event handed to the log so far into the lake."""
        ...

    async def workspace_rollback(self, session_id: SessionId, to: str | None = None, *, by: str = "api",
                                 timeout_s: float = 60.0) -> Any:
        """Roll back a live session's workspace in the host holding it (a
        :class:`~troupe.runtime.session.workspace_history.RollbackResult`), or ``None`` when no host
        of this backend holds the session (the caller then restores the folder itself)."""
        ...

    async def finish_run(self, run_id: str) -> None:
        """Flush, then compact a run's files (a sweep calls this once, at its end)."""
        ...

    async def close_idle_mcp(self) -> int:
        """Close the node-scoped MCP connections nobody is using (a sweep, at its end); returns how many."""
        ...

    async def shutdown(self) -> None: ...


class Session:
    def __init__(self, backend: Backend, spec: SessionSpec) -> None:
        self.backend = backend
        self.spec = spec
        self.id = spec.session_id
        self.run_id = spec.run_id
        self._started = False
        self._closed = False

    @property
    def lake(self) -> str:
        return self.backend.lake

    async def send(self, text: str, *, to: str | None = None) -> None:
        """Give the team input (the first send starts the session's clock and budgets)."""
        recipient = AgentId(to) if to else self.spec.team.entry
        if recipient not in self.spec.members():
            raise UnknownAgentError(
                f"unknown agent {recipient!r}; this session's agents are {self.spec.members()}", agent=recipient
            )
        turn: int | None = None
        if not self._started:
            first = await self.backend.call(self.id, SUPERVISOR, "start", {
                "input": text, "team": self.spec.team.name, "placement": str(self.spec.placement)})
            self._started, turn = True, 1
            text = first or text
        elif self.spec.converses and recipient == self.spec.team.entry:
            # The next turn; ``request`` lets a call retried after the supervisor restarted answer the same turn.
            turn = await self.backend.call(self.id, SUPERVISOR, "say", {"text": text, "request": unique_hex()})
        await self.backend.deliver(self.id, recipient, user_message(self.id, self.run_id, recipient, text, turn))

    async def result(self, *, timeout: float | None = None) -> SessionResult:
        """The session's result; in a conversation, the latest turn's (status ``running``, ``reply``
        that turn's, ``turns`` every turn so far) or, once it ended, the whole conversation's. With a
        simulated user, whose answers drive the turns, the whole conversation's."""
        if self.spec.conversation and self.spec.team.user is None:
            return await self.backend.call(self.id, SUPERVISOR, "wait_turn", {"timeout": timeout})
        return await self.backend.call(self.id, SUPERVISOR, "wait", {"timeout": timeout})

    async def turns(self) -> list[dict[str, Any]]:
        """A conversation's turns so far: ``turn``, ``input``, ``reply``, ``usage``."""
        return await self.backend.call(self.id, SUPERVISOR, "conversation_turns", {})

    async def end(self) -> SessionResult:
        """End a conversation: completed, its reply the last turn's, ``turns`` all of them."""
        return await self.backend.call(self.id, SUPERVISOR, "end", {})

    async def events(self) -> AsyncIterator[Event]:
        """Events as they happen (tokens included when the session streams them), until it finishes."""
        async for event in self.backend.tail(self.id):
            yield event
            if event.type == "session.finished":
                return

    async def cancel(self, reason: str = "cancelled by the client") -> None:
        await self.backend.call(self.id, SUPERVISOR, "cancel", {"reason": reason})

    async def cancel_turn(self, reason: str = "cancelled by the client") -> TurnCancel:
        """Cancel the turn under way of a conversation (its model and tool calls, approvals, open tasks:
        :mod:`troupe.runtime.session.turn_cancel`); the session stays running and takes the next turn."""
        return await cancel_turn(self.backend, self.spec, reason)

    async def control(self, agent: str, op: ControlOp) -> None:
        await self.backend.deliver(self.id, AgentId(agent), control_message(self.id, AgentId(agent), op))

    async def pause(self, agent: str) -> None:
        await self.control(agent, ControlOp.PAUSE)

    async def resume(self, agent: str) -> None:
        await self.control(agent, ControlOp.RESUME)

    async def approvals(self) -> list[dict[str, Any]]:
        """Tool calls waiting for approval (each also appeared as an ``approval.requested`` event)."""
        return await self.backend.call(self.id, SUPERVISOR, "pending_approvals", {})

    async def approve(self, approval_id: str, reason: str = "") -> dict[str, Any]:
        """Let a waiting tool call run."""
        return await self.backend.call(self.id, SUPERVISOR, "decide",
                                       {"approval_id": approval_id, "approved": True, "reason": reason})

    async def deny(self, approval_id: str, reason: str = "") -> dict[str, Any]:
        """Refuse a waiting tool call; the agent reads the refusal and goes on."""
        return await self.backend.call(self.id, SUPERVISOR, "decide",
                                       {"approval_id": approval_id, "approved": False, "reason": reason})

    async def elicitations(self) -> list[dict[str, Any]]:
        """MCP servers' requests for input waiting for an answer (each also an ``elicitation.requested`` event,
        with the form's ``requested_schema``)."""
        return await self.backend.call(self.id, SUPERVISOR, "pending_elicitations", {})

    async def answer_elicitation(self, elicitation_id: str, action: str = "accept",
                                 content: dict[str, Any] | None = None, reason: str = "") -> dict[str, Any]:
        """Answer a server's request for input: ``accept`` with ``content`` (the form's values; its defaults fill
        in the rest, and a misfit is refused with what is wrong), ``decline`` or ``cancel``."""
        return await self.backend.call(self.id, SUPERVISOR, "answer_elicitation",
                                       {"elicitation_id": elicitation_id, "action": action, "content": content,
                                        "reason": reason})

    async def blackboard(self, prefix: str = "") -> list[Any]:
        return await self.backend.call(self.id, BLACKBOARD, "list", {"prefix": prefix})

    async def tasks(self) -> list[Any]:
        return await self.backend.call(self.id, TASKS, "list", {})

    async def describe(self, agent: str) -> dict[str, Any]:
        return await self.backend.call(self.id, AgentId(agent), "describe", {})

    async def run(self, text: str, *, timeout: float | None = None) -> SessionResult:
        """Send ``text`` and wait for the result (cancelling the session on timeout)."""
        await self.send(text)
        try:
            return await self.result(timeout=timeout)
        except TimeoutError:
            await self.cancel(f"no result within {timeout}s")
            return await self.result(timeout=30)

    async def close(self, *, compact: bool = True) -> None:
        if not self._closed:
            self._closed = True
            await self.backend.close_session(self.id, compact=compact)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["Backend", "Session"]
