"""Payloads of a session's life: started, finished, resumed, over budget, an actor back from its checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from troupe.runtime.events.payload import Payload


class SessionStartedPayloadV1(Payload):
    """``session.started`` before full records (payload version 1: no team config, no lineage)."""

    input: str
    team: str
    placement: str
    entry: str
    budgets: dict[str, Any]


class SessionStartedPayloadV2(Payload):
    """``session.started`` before sessions had an owner (payload version 2: no ``user``)."""

    input: str
    """The user's first message."""
    team: str
    """The team's name."""
    placement: str
    """Where its actors run (``local``, ``one-host``, ``per-agent``, ...)."""
    entry: str
    """The agent that receives the input and whose reply ends the session."""
    budgets: dict[str, Any]
    """The session's budgets (``max_tokens``, ``max_llm_calls``, ``max_tool_calls``, ``max_wall_s``; null = none)."""
    config: dict[str, Any] | None = None
    """The team config as the session ran it (after ``--model`` and a sweep's grid cell; secrets redacted
    as every payload is): what ``troupe replay`` and ``troupe fork`` run again."""
    conversation: bool = False
    """The session was opened as a conversation (replies end turns, not the session)."""
    replay_of: str | None = None
    """Set on a replay (``troupe replay``): the session it replays."""
    forked_from: str | None = None
    """Set on a fork (``troupe fork``): the session it was forked from."""
    fork_point: str | None = None
    """Set on a fork: where it left its parent's record (``event:<id>``, ``turn:<n>``, ``tool:<call id>``)."""


class SessionStartedPayload(Payload):
    """The supervisor accepted the session's input (``status`` is ``running``)."""

    payload_version: ClassVar[int] = 3
    event_type: Literal["session.started"] = "session.started"
    input: str
    """The user's first message."""
    team: str
    """The team's name."""
    placement: str
    """Where its actors run (``local``, ``one-host``, ``per-agent``, ...)."""
    entry: str
    """The agent that receives the input and whose reply ends the session."""
    budgets: dict[str, Any]
    """The session's budgets (``max_tokens``, ``max_llm_calls``, ``max_tool_calls``, ``max_wall_s``; null = none)."""
    config: dict[str, Any] | None = None
    """The team config as the session ran it (after ``--model`` and a sweep's grid cell; secrets redacted
    as every payload is): what ``troupe replay`` and ``troupe fork`` run again."""
    conversation: bool = False
    """The session was opened as a conversation (replies end turns, not the session)."""
    replay_of: str | None = None
    """Set on a replay (``troupe replay``): the session it replays."""
    forked_from: str | None = None
    """Set on a fork (``troupe fork``): the session it was forked from."""
    fork_point: str | None = None
    """Set on a fork: where it left its parent's record (``event:<id>``, ``turn:<n>``, ``tool:<call id>``)."""
    user: str | None = None
    """Who owns the session (the server's principal; ``None``: started outside ``troupe serve``)."""


class SessionFinishedPayload(Payload):
    """The session ended (``status``: completed, failed, cancelled, budget_exceeded; ``duration_ms`` set)."""

    event_type: Literal["session.finished"] = "session.finished"
    reply: str | None
    """The entry agent's final answer, if it gave one."""
    error: str | None
    """Why it did not complete, if it did not."""
    usage: dict[str, int]
    """What it used: ``tokens``, ``llm_calls``, ``tool_calls``."""


class SessionResumedPayload(Payload):
    """The session goes on after a stop (``troupe resume``); ``status`` is its status then."""

    event_type: Literal["session.resumed"] = "session.resumed"
    usage: dict[str, int]
    """What it had used before the stop: ``tokens``, ``llm_calls``, ``tool_calls``."""


class TurnFinishedPayload(Payload):
    """A conversation's turn ended: the entry agent replied to the user's ``turn``-th message (the
    session stays running, waiting for the next message, unless the conversation ends here)."""

    event_type: Literal["turn.finished"] = "turn.finished"
    turn: int
    """The user turn, from 1."""
    input: str | None
    """The user's message that started it."""
    reply: str
    """The entry agent's reply."""
    usage: dict[str, int]
    """What the session has used so far, all turns: ``tokens``, ``llm_calls``, ``tool_calls``."""


class TurnCancelledPayload(Payload):
    """A conversation's turn was cancelled by the client (``Session.cancel_turn``: ACP's ``session/cancel``,
    the HTTP API, Ctrl-C in ``troupe chat``): its model and tool calls were stopped, its pending approvals
    denied, its open tasks cancelled; the session stays running and takes the next user turn, the
    cancelled turn's messages kept in the agents' context (docs/conversations.md)."""

    event_type: Literal["turn.cancelled"] = "turn.cancelled"
    turn: int
    """The user turn, from 1."""
    input: str | None
    """The user's message that started it."""
    reason: str
    """Why, as the client said."""
    usage: dict[str, int]
    """What the session has used so far, all turns: ``tokens``, ``llm_calls``, ``tool_calls``."""


class BudgetExceededPayload(Payload):
    """A budget ran out; the session finishes with status ``budget_exceeded`` right after."""

    event_type: Literal["budget.exceeded"] = "budget.exceeded"
    budget: str
    """Which budget (``max_tokens``, ``max_llm_calls``, ``max_tool_calls``, ``max_wall_s``)."""
    limit: int | float
    """Its limit."""
    usage: dict[str, int]
    """What the session had used: ``tokens``, ``llm_calls``, ``tool_calls``."""


class ActorRestoredPayload(Payload):
    """A logical actor came back from its checkpoint after a crash or a stop (``agent`` names it)."""

    event_type: Literal["actor.restored"] = "actor.restored"
    seq: int
    """The checkpoint's sequence number."""
    kind: str
    """What was checkpointed (``agent`` or a service such as ``blackboard``)."""
    saved_at: str
    """When the checkpoint was written (ISO 8601)."""
    replays_turn: bool
    """Whether the agent was inside a turn, which it now replays from its journal."""
    unread: int
    """Messages waiting in its restored mailbox."""
    unsent: int
    """Messages it had produced but not yet handed on (sent again now)."""


__all__ = [
    "ActorRestoredPayload",
    "BudgetExceededPayload",
    "SessionFinishedPayload",
    "SessionResumedPayload",
    "SessionStartedPayload",
    "SessionStartedPayloadV1",
    "SessionStartedPayloadV2",
    "TurnCancelledPayload",
    "TurnFinishedPayload",
]
