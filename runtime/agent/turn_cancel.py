"""Cancelling one user turn in an agent: what a control message ``{"op": "cancel", "turn": n}`` does.

The session's client cancelled turn ``n`` of a conversation (:mod:`troupe.runtime.session.turn_cancel`). In
each agent that works on it: its queued messages of that turn are dropped, and so are the ones that arrive
later (:attr:`~troupe.runtime.agent.mailbox.Mailbox.closed_turns`); its open requests of that turn are
forgotten (nobody is answered for a cancelled turn); a running turn that works for it is cancelled — its model
call stops, each tool call in flight stops and ends with a ``tool.error`` (``cancelled``), a wait for
approval ends. The context keeps what the turn did so far (the user's message, the model's calls and the
results that came back), each unanswered call gets a "stopped" result, and a short note says the turn was
cancelled, so the next turn's model reads a whole, valid history. The agent goes back to ``idle`` and saves
its checkpoint (the cancelled turn is not replayed after a crash).
"""

from __future__ import annotations

import asyncio
import time

from troupe.runtime.agent.core import AgentCore
from troupe.runtime.agent.state import AgentState
from troupe.runtime.llm.types import ChatMessage
from troupe.runtime.messages import MessageKind

SETTLE_S = 10.0
"""How long :func:`cancel_turn` waits for the cancelled turn's cleanup (its tools' ``finally`` blocks)."""


def note_for(turn: int) -> ChatMessage:
    return ChatMessage(role="assistant", content=f"[turn {turn} was cancelled by the user before I finished; "
                                                 "what I did for it is above]")


async def cancel_turn(agent: AgentCore, turn: int, *, settle_s: float = SETTLE_S) -> bool:
    """Stop ``agent``'s work for user turn ``turn``; returns whether it had any. Waits (up to ``settle_s``)
    until a cancelled turn has ended and the agent is idle again, so the events of what was stopped come
    before the caller's next step."""
    if agent.sm.state is AgentState.TERMINATED:
        return False
    agent.mailbox.closed_turns.add(turn)
    dropped = agent.mailbox.discard(lambda e: e.trace.turn == turn and e.kind is not MessageKind.CONTROL)
    kept = [e for e in agent.open_requests if e.trace.turn != turn]
    forgot = len(agent.open_requests) - len(kept)
    agent.open_requests = kept
    task = agent._turn_task
    running = task is not None and not task.done() and agent._session_turn == turn
    if running or forgot:
        agent.context.close_calls()
        agent.context.add(note_for(turn))
    if not running:
        return bool(dropped or forgot)
    assert task is not None
    task.cancel()
    deadline = time.monotonic() + settle_s
    await asyncio.wait([task], timeout=settle_s)
    while agent._turn_task is task and agent.sm.state is AgentState.RUNNING and time.monotonic() < deadline:
        await asyncio.sleep(0.005)  # the run loop records the cancellation, goes idle and saves
    return True


__all__ = ["SETTLE_S", "cancel_turn", "note_for"]
