"""Cancelling the turn under way of a conversation, and leaving the session ready for the next one.

``Session.cancel_turn()`` (ACP's ``session/cancel``, ``POST /api/v1/sessions/{sid}/turns/current/cancel``,
Ctrl-C in ``troupe chat``) does, in this order, in either placement (each step through the backend, so the
actors may live anywhere):

1. asks the supervisor which turn is under way (none: nothing to cancel);
2. sends every member a control message ``{"op": "cancel", "turn": n}``; the host holding the agent stops the
   agent's work of that turn and of its children's (:func:`stop_turn`, :mod:`troupe.runtime.agent.turn_cancel`):
   model calls and tool calls in flight stop (each call ends with a ``tool.error``, ``cancelled``), waits for
   approval end, the turn's queued and late messages are dropped, and the agent is idle again, its checkpoint
   saved — before the delivery returns;
3. cancels the tasks created in that turn that are still open (``task.status`` ``cancelled``);
4. ends the turn at the supervisor: ``turn.cancelled``, pending approvals denied and requests for input
   declined; the session stays ``running`` and takes the next user turn.

The agents keep the cancelled turn's messages in their context (the user's message, what was done, a
"stopped" result for each call cut short, and a note that the turn was cancelled): the next turn can refer
to it. docs/conversations.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.agent import turn_cancel as agent_turn
from troupe.runtime.agent.core import AgentCore
from troupe.runtime.ids import SUPERVISOR, TASKS, USER, AgentId
from troupe.runtime.messages import TURN_KWARG, ControlOp, Envelope, MessageKind
from troupe.runtime.session.spec import SessionSpec


class TurnCancel(BaseModel):
    """What :meth:`Session.cancel_turn` did."""

    turn: int | None
    """The turn that was under way (``None``: none was: the conversation waited for the next message)."""
    cancelled: bool
    """Whether it ended as cancelled (false: no turn was under way, or it finished before the cancel reached it)."""
    tasks: list[str] = Field(default_factory=list)
    """The tasks of that turn that were cancelled."""


def is_turn_cancel(envelope: Envelope) -> bool:
    return envelope.is_control and envelope.data.get("op") == ControlOp.CANCEL and envelope.data.get("turn") is not None


def turn_cancel_message(spec: SessionSpec, agent: AgentId, turn: int) -> Envelope:
    return Envelope(session_id=spec.session_id, sender=SUPERVISOR, recipient=agent, kind=MessageKind.CONTROL,
                    data={"op": str(ControlOp.CANCEL), "turn": turn})


async def stop_turn(guests: Mapping[AgentId, Any], agent: AgentId, envelope: Envelope) -> bool:
    """A host's part: stop the work of the envelope's turn in ``agent`` and in its children held here
    (returns once they are idle again)."""
    turn = int(envelope.data["turn"])
    cores = [g for name, g in guests.items() if (name == agent or name.startswith(f"{agent}.")) and isinstance(g, AgentCore)]
    await asyncio.gather(*(agent_turn.cancel_turn(core, turn) for core in cores))
    return True


async def cancel_turn(backend: Any, spec: SessionSpec, reason: str) -> TurnCancel:
    """The client's part (see the module's docstring); ``backend``: the session's
    :class:`~troupe.runtime.session.handle.Backend`."""
    sid = spec.session_id
    turn = await backend.call(sid, SUPERVISOR, "turn_under_way", {})
    if turn is None:
        return TurnCancel(turn=None, cancelled=False)
    await asyncio.gather(*(backend.deliver(sid, agent, turn_cancel_message(spec, agent, turn)) for agent in spec.members()))
    tasks = await backend.call(sid, TASKS, "cancel_turn", {"turn": turn, "by": str(USER), TURN_KWARG: turn})
    ended = await backend.call(sid, SUPERVISOR, "cancel_turn", {"turn": turn, "reason": reason})
    return TurnCancel(turn=turn, cancelled=bool(ended["cancelled"]), tasks=list(tasks))


__all__ = ["TurnCancel", "cancel_turn", "is_turn_cancel", "stop_turn", "turn_cancel_message"]
