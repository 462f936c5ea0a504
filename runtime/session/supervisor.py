"""The session supervisor: budgets, turns, the final result, and the session's lifecycle events.

A one-shot session ends at the entry agent's first reply to the user. A *conversation* (opened with
``conversation=True``, or any session of a team with a simulated ``user``) takes many user turns: the
entry agent's reply ends turn ``n`` (event ``turn.finished``) and the session waits for the next
message (:meth:`Supervisor.say`) or :meth:`Supervisor.end`. With a simulated user the supervisor
forwards each reply to it (``user_sim``) and sends its answer back as the next turn, until the answer
holds the stop token or ``max_turns`` turns were taken.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.config import USER_SIM, Budgets, UserSimSpec
from troupe.runtime.errors import BudgetExceededError, TroupeError
from troupe.runtime.events import (
    BudgetExceededPayload,
    Emitter,
    Payload,
    SessionFinishedPayload,
    SessionResumedPayload,
    SessionStartedPayload,
    TurnCancelledPayload,
    TurnFinishedPayload,
)
from troupe.runtime.ids import USER, AgentId, RunId, SessionId
from troupe.runtime.messages import Envelope, Trace
from troupe.runtime.session.approvals import Approvals
from troupe.runtime.session.elicitations import Elicitations


class SessionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"


class Usage(BaseModel):
    tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0


class TurnRecord(BaseModel):
    """One user turn of a conversation: the user's message and the entry agent's reply."""

    turn: int
    input: str | None = None
    reply: str
    usage: Usage = Field(default_factory=Usage)
    """The session's usage when the turn ended (all turns so far)."""
    cancelled: bool = False
    """The client cancelled the turn (:meth:`Supervisor.cancel_turn`): ``reply`` is empty."""


class SessionResult(BaseModel):
    """How a session ended; what ``troupe run --json`` prints."""

    session_id: SessionId
    run_id: RunId
    status: SessionStatus
    reply: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    final_state: dict[str, Any] | None = None
    """The environment's final state, as its teardown hook captured it (``None``: no environment or no hook)."""
    sample_dir: str | None = None
    """The environment's folder (``${sample_dir}``), when the session had an environment."""
    turns: list[TurnRecord] = Field(default_factory=list)
    """A conversation's turns so far (empty for a one-shot session)."""

    @property
    def ok(self) -> bool:
        return self.status is SessionStatus.COMPLETED


_REASON = re.compile(r"([a-z][a-z_]*): (.*)", re.DOTALL)


def failure_text(agent: str, error_type: str, message: str, reason: str | None = None) -> str:
    """The session's error for an agent's failure. A model failure starts with its reason, the
    ``llm.error`` event's status (``rate_limited: agent 'a': model request failed ...``): the
    :class:`~troupe.runtime.errors.ProviderError` message starts with it, or ``reason`` gives it.
    Anything else says the agent and the error's type (``agent 'a' failed: ScriptExhaustedError: ...``)."""
    if error_type == "ProviderError" or reason:
        found = _REASON.fullmatch(message)
        if found and (reason is None or found.group(1) == reason):
            reason, message = found.group(1), found.group(2)
        return f"{reason or 'error'}: agent {agent!r}: {message}"
    return f"agent {agent!r} failed: {error_type}: {message}"


class Supervisor:
    def __init__(
        self,
        *,
        session_id: SessionId,
        run_id: RunId,
        entry: AgentId,
        budgets: Budgets,
        emit: Emitter,
        on_finish: Callable[[SessionResult], Awaitable[None]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        conversation: bool = False,
        user: UserSimSpec | None = None,
        send: Callable[[Envelope], None] | None = None,
        on_boundary: Callable[[str], Awaitable[object]] | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.run_id = run_id
        self.entry = entry
        self.budgets = budgets
        self._emit = emit
        self.on_finish = on_finish
        self.clock = clock
        self.usage = Usage()
        self.status = SessionStatus.RUNNING
        self.result: SessionResult | None = None
        self._done = asyncio.Event()
        self._started_at: datetime | None = None
        self._started_mono = 0.0
        self._timer: asyncio.Task[None] | None = None
        self.input: str | None = None
        self.approvals = Approvals(session_id=str(session_id), emit=self.emit)
        self.elicitations = Elicitations(session_id=str(session_id), emit=self.emit)
        self.conversation = conversation or user is not None
        self.user = user
        self.send = send
        """Sends a message for the supervisor (to the entry agent or the simulated user), in the background."""
        self.on_boundary = on_boundary
        """Awaited when a turn or the session ends, before anyone hears of it (the workspace's snapshot)."""
        self.record = record or {}
        """What ``session.started`` records for a replay: the team config, ``conversation``, a replay's or fork's origin."""
        self.turn = 0
        self.turns: list[TurnRecord] = []
        self.turn_input: str | None = None
        self.turn_request: str | None = None
        """The ``request`` of the ``say`` that opened the current turn (a retried call answers it again)."""
        self.first: str | None = None
        self.scenario: str | None = None
        self.answered: list[str] = []
        """The messages whose replies ended turns (a restored agent that replays its turn replies again)."""
        self._changed = asyncio.Event()

    def emit(self, payload: Payload, /, **fields: Any) -> None:
        """Emit one of the session's events, stamped with the current user turn (none before the first)."""
        fields.setdefault("turn", self.turn or None)
        self._emit(payload, **fields)

    def start(self, *, input: str, team: str, placement: str) -> str:
        """Start the clock and budgets; returns the entry agent's first message (a simulated user's
        ``first_message`` when it has one: then ``input`` is the user's scenario)."""
        if self._started_at is not None:
            return self.first or input  # a re-sent start (the client's call retried after this actor restarted)
        self.input = input
        if self.user is not None and self.user.first_message is not None:
            self.first, self.scenario = self.user.first_message, input or None
        else:
            self.first = input
        self.turn, self.turn_input = 1, self.first
        self._started_at = self.clock.now()
        self._started_mono = self.clock.monotonic()
        self.emit(SessionStartedPayload(input=input, team=team, placement=placement, entry=self.entry,
                                        budgets=self.budgets.model_dump(), **self.record), status="running")
        if self.budgets.max_wall_s is not None:
            self._timer = asyncio.get_running_loop().create_task(self._wall_timer(self.budgets.max_wall_s))
        return self.first

    async def _wall_timer(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        await self._exceeded("max_wall_s", seconds)

    async def _exceeded(self, budget: str, limit: float) -> None:
        if self.status is not SessionStatus.RUNNING:
            return
        self.emit(BudgetExceededPayload(budget=budget, limit=limit, usage=self.usage.model_dump()), status="budget_exceeded")
        await self.finish(SessionStatus.BUDGET_EXCEEDED, error=f"budget {budget}={limit:g} exceeded")

    async def charge(self, *, agent: str = "", tokens: int = 0, llm_calls: int = 0, tool_calls: int = 0) -> None:
        """Add usage; raises :class:`BudgetExceededError` (and ends the session) past a budget."""
        if self.status is not SessionStatus.RUNNING:
            raise BudgetExceededError(f"session is {self.status}; no more work is accepted", status=str(self.status))
        self.usage.tokens += tokens
        self.usage.llm_calls += llm_calls
        self.usage.tool_calls += tool_calls
        for name, used, limit in (
            ("max_tokens", self.usage.tokens, self.budgets.max_tokens),
            ("max_llm_calls", self.usage.llm_calls, self.budgets.max_llm_calls),
            ("max_tool_calls", self.usage.tool_calls, self.budgets.max_tool_calls),
        ):
            if limit is not None and used > limit:
                await self._exceeded(name, limit)
                raise BudgetExceededError(f"budget {name}={limit} exceeded ({used} used)", budget=name, agent=agent)

    async def deliver(self, envelope: Envelope) -> bool:
        """A message to the user: the entry agent's reply completes the session (one-shot) or the
        turn (conversation); a simulated user's answer starts the next turn or ends the conversation."""
        if self.status is not SessionStatus.RUNNING:
            return True
        if envelope.recipient == USER and envelope.sender == self.entry:
            if self.conversation and any(t.cancelled and t.turn == envelope.trace.turn for t in self.turns):
                return True  # a late reply of a cancelled turn: that turn has ended
            if not self.conversation:
                await self.finish(SessionStatus.COMPLETED, reply=envelope.content)
            else:
                await self._turn_done(envelope.content, str(envelope.reply_to or ""))
        elif envelope.sender == USER_SIM and self.user is not None:
            await self._user_said(envelope.content)
        return True

    # --- conversations ----------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _send(self, recipient: AgentId, content: str) -> None:
        if self.send is None:
            raise TroupeError("this supervisor cannot send messages (no host gave it a way to)")
        self.send(Envelope(session_id=self.session_id, sender=USER, recipient=recipient, content=content,
                           trace=Trace(run_id=self.run_id, turn=self.turn or None)))

    async def _turn_done(self, reply: str, answers: str) -> None:
        if len(self.turns) >= self.turn or (answers and answers in self.answered):
            return  # a second reply in one turn (woken by a notice), or a turn replayed after a crash
        if answers:
            self.answered = [*self.answered[-99:], answers]
        record = TurnRecord(turn=self.turn, input=self.turn_input, reply=reply, usage=self.usage.model_copy())
        self.turns.append(record)
        if self.on_boundary is not None:
            await self.on_boundary(f"turn {record.turn}")
        self.emit(TurnFinishedPayload(turn=record.turn, input=record.input, reply=reply, usage=self.usage.model_dump()),
                  status="ok")
        self._notify()
        if self.user is None:
            return
        if self.turn >= self.user.max_turns:
            await self.finish(SessionStatus.COMPLETED, reply=reply)
            return
        said = reply if self.turn > 1 or not self.scenario else f"Your scenario: {self.scenario}\n\nThe assistant said: {reply}"
        self._send(USER_SIM, said)

    async def _user_said(self, text: str) -> None:
        assert self.user is not None
        if self.user.stop in text or len(self.turns) < self.turn:
            await self.finish(SessionStatus.COMPLETED, reply=self.turns[-1].reply if self.turns else None)
            return
        self.turn, self.turn_input = self.turn + 1, text
        self._send(self.entry, text)

    def say(self, *, text: str, request: str | None = None) -> int:
        """Open the next user turn (the client then delivers ``text`` to the entry agent); returns its number.

        ``request`` (the client's id for this send) makes the call safe to retry: Ray re-runs an actor call whose
        actor died before it answered, and this actor may have opened the turn and checkpointed it first; the
        same ``request`` again answers the turn it opened instead of "still under way"."""
        if request is not None and request == self.turn_request and text == self.turn_input:
            return self.turn
        if not self.conversation:
            raise TroupeError("this session is one-shot: open it with conversation=True to send again", session=self.session_id)
        if self.status is not SessionStatus.RUNNING:
            raise TroupeError(f"the conversation is {self.status}; it takes no more messages", session=self.session_id,
                              status=str(self.status))
        if len(self.turns) < self.turn:
            raise TroupeError(f"turn {self.turn} is still under way: await session.result() before sending again",
                              session=self.session_id)
        self.turn, self.turn_input, self.turn_request = self.turn + 1, text, request
        return self.turn

    async def end(self) -> SessionResult:
        """End a conversation (completed, its reply the last turn's)."""
        return await self.finish(SessionStatus.COMPLETED, reply=self.turns[-1].reply if self.turns else None)

    async def wait_turn(self, *, turn: int | None = None, timeout: float | None = None) -> SessionResult:
        """Wait for turn ``turn`` (default: the current one) to end, or the session; the session's
        result once it finished, else a ``running`` result whose ``reply`` is that turn's."""
        want = turn or self.turn
        async with asyncio.timeout(timeout):
            while self.result is None and len(self.turns) < want:
                await self._changed.wait()
        if self.result is not None:
            return self.result
        record = self.turns[want - 1]
        return SessionResult(session_id=self.session_id, run_id=self.run_id, status=self.status,
                             reply=None if record.cancelled else record.reply,
                             error=f"turn {record.turn} was cancelled" if record.cancelled else None,
                             usage=self.usage.model_copy(), started_at=self._started_at, turns=list(self.turns))

    def turn_under_way(self) -> int | None:
        """The user turn the team works on now (``None``: it waits for the next message, or has ended)."""
        if not self.conversation or self.user is not None:
            raise TroupeError("only a conversation driven by its client has turns to cancel: cancel the session instead",
                              session=self.session_id)
        running = self.status is SessionStatus.RUNNING and len(self.turns) < self.turn
        return self.turn if running else None

    async def cancel_turn(self, *, turn: int, reason: str = "cancelled by the client") -> dict[str, Any]:
        """End turn ``turn`` as cancelled (``turn.cancelled``) if it is still under way; the session stays
        running for the next turn. Denies the approvals and declines the requests for input still pending.
        Called by :mod:`troupe.runtime.session.turn_cancel` once the agents' work of that turn was stopped.
        Returns ``{"turn": n, "cancelled": bool}`` (false: it had ended meanwhile)."""
        if self.turn_under_way() != turn:
            return {"turn": turn, "cancelled": False}
        record = TurnRecord(turn=self.turn, input=self.turn_input, reply="", usage=self.usage.model_copy(), cancelled=True)
        self.turns.append(record)
        self.approvals.deny_all(f"turn {record.turn} was cancelled")
        self.elicitations.decline_all(f"turn {record.turn} was cancelled")
        if self.on_boundary is not None:
            await self.on_boundary(f"turn {record.turn}")
        self.emit(TurnCancelledPayload(turn=record.turn, input=record.input, reason=reason, usage=self.usage.model_dump()),
                  status="cancelled")
        self._notify()
        return {"turn": record.turn, "cancelled": True}

    def conversation_turns(self) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json") for t in self.turns]

    async def agent_failed(self, *, agent: str, error_type: str, message: str, status: str = "failed",
                           reason: str | None = None) -> None:
        if self.status is not SessionStatus.RUNNING:
            return
        ending = {s.value for s in SessionStatus} - {SessionStatus.RUNNING.value}
        final = SessionStatus(status) if status in ending else SessionStatus.FAILED
        await self.finish(final, error=failure_text(agent, error_type, message, reason))

    async def request_approval(self, *, agent: str, tool: str, arguments: str, call_id: str,
                               timeout_s: float, risk: dict[str, Any] | None = None,
                               recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        """Wait for the client to approve a tool call (see :mod:`troupe.runtime.session.approvals`);
        ``risk``: the call's risk score and reasons, for the client to see; ``recorded``: a replay's decision."""
        if self.status is not SessionStatus.RUNNING:
            return {"id": "", "approved": False, "by": "session", "reason": f"the session is {self.status}"}
        return await self.approvals.request(agent=agent, tool=tool, arguments=arguments, call_id=call_id,
                                            timeout_s=timeout_s, risk=risk, recorded=recorded)

    async def decide(self, *, approval_id: str, approved: bool, reason: str = "") -> dict[str, Any]:
        return self.approvals.decide(approval_id, approved=approved, reason=reason)

    async def pending_approvals(self) -> list[dict[str, Any]]:
        return self.approvals.pending()

    async def request_elicitation(self, *, agent: str, tool: str, call_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """An MCP server asks for input during ``agent``'s call (see :mod:`troupe.runtime.session.elicitations`)."""
        if self.status is not SessionStatus.RUNNING:
            return {"id": "", "action": "decline", "content": None, "by": "session", "reason": f"the session is {self.status}"}
        return await self.elicitations.request(agent=agent, tool=tool, call_id=call_id, request=request)

    async def answer_elicitation(self, *, elicitation_id: str, action: str, content: dict[str, Any] | None = None,
                                 reason: str = "") -> dict[str, Any]:
        return self.elicitations.answer(elicitation_id, action=action, content=content, reason=reason)  # type: ignore[arg-type]

    async def pending_elicitations(self) -> list[dict[str, Any]]:
        return self.elicitations.pending()

    async def cancel(self, *, reason: str = "cancelled by the client") -> None:
        await self.finish(SessionStatus.CANCELLED, error=reason)

    async def finish(self, status: SessionStatus, *, reply: str | None = None, error: str | None = None) -> SessionResult:
        if self.result is not None:
            return self.result
        self.status = status
        now = self.clock.now()
        self.result = SessionResult(
            session_id=self.session_id, run_id=self.run_id, status=status, reply=reply, error=error,
            usage=self.usage.model_copy(), started_at=self._started_at, finished_at=now,
            duration_s=round(self.clock.monotonic() - self._started_mono, 6), turns=list(self.turns),
        )
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        if self.on_boundary is not None:
            await self.on_boundary(f"session {status}")
        self.emit(SessionFinishedPayload(reply=reply, error=error, usage=self.usage.model_dump()),
                  status=str(status), duration_ms=(self.result.duration_s or 0.0) * 1e3)
        self.approvals.deny_all(f"the session ended ({status})")
        self.elicitations.decline_all(f"the session ended ({status})")
        self._notify()
        try:
            if self.on_finish is not None:  # first: a checkpointed result is saved before anyone hears of it
                await self.on_finish(self.result)
        finally:
            self._done.set()
        return self.result

    def resumed(self) -> str:
        """Record that the session goes on after a stop (``troupe resume``); returns its status."""
        self.emit(SessionResumedPayload(usage=self.usage.model_dump()), status=str(self.status))
        return str(self.status)

    async def wait(self, *, timeout: float | None = None) -> SessionResult:
        await asyncio.wait_for(self._done.wait(), timeout)
        assert self.result is not None
        return self.result

    def describe(self) -> dict[str, Any]:
        return {"status": str(self.status), "usage": self.usage.model_dump()}

    # --- checkpoints ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Status, usage, running time and result, as JSON (pending approvals are not kept: a
        restarted agent asks again)."""
        started = self._started_at is not None
        return {
            "status": str(self.status), "usage": self.usage.model_dump(), "input": self.input,
            "started_at": self._started_at.isoformat() if self._started_at is not None else None,
            "elapsed_s": (self.clock.monotonic() - self._started_mono) if started and self.result is None
            else (self.result.duration_s if self.result else 0.0),
            "result": self.result.model_dump(mode="json") if self.result else None,
            "turn": self.turn, "turns": self.conversation_turns(), "turn_input": self.turn_input,
            "turn_request": self.turn_request,
            "first": self.first, "scenario": self.scenario, "answered": self.answered,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take a :meth:`snapshot`'s state (on a fresh supervisor, before any call). The wall-clock
        budget counts running time only: the time the session spent stopped is not charged."""
        self.status = SessionStatus(state["status"])
        self.usage = Usage.model_validate(state["usage"])
        self.input = state.get("input")
        self.turn, self.turn_input = int(state.get("turn") or 0), state.get("turn_input")
        self.turn_request = state.get("turn_request")
        self.turns = [TurnRecord.model_validate(t) for t in state.get("turns") or ()]
        self.first, self.scenario = state.get("first"), state.get("scenario")
        self.answered = list(state.get("answered") or ())
        if state.get("started_at"):
            self._started_at = datetime.fromisoformat(state["started_at"])
            self._started_mono = self.clock.monotonic() - float(state.get("elapsed_s") or 0.0)
        if state.get("result"):
            self.result = SessionResult.model_validate(state["result"])
            self._done.set()
        elif self._started_at is not None and self.budgets.max_wall_s is not None:
            left = max(0.0, self.budgets.max_wall_s - float(state.get("elapsed_s") or 0.0))
            self._timer = asyncio.get_running_loop().create_task(self._resume_timer(left))

    async def _resume_timer(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        assert self.budgets.max_wall_s is not None
        await self._exceeded("max_wall_s", self.budgets.max_wall_s)


__all__ = ["SessionResult", "SessionStatus", "Supervisor", "TurnRecord", "Usage", "failure_text"]
