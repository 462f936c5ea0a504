"""Playing a recorded session back: each agent's model answers from the record, and its tool calls
whose effects leave the session answer with their recorded results (``troupe replay``, ``troupe fork``).

The record of one agent (:class:`AgentRecording`) is its model calls in order, each with what its
request looked like (message count and last message) and what came back (a response or an error),
and the results of its tool calls by call id. A :class:`RecordedClient` serves the calls in order,
checking each request against the record; a :class:`ToolReplay` gives :mod:`troupe.runtime.agent.toolexec`
a call's recorded outcome instead of running it. A fork sets ``live_after``: from that call on, the
live model (built only then) answers, and tool calls run for real.

The session's own services (blackboard, tasks, messaging, delegation) always run for real: their
changes are what a replay reproduces and compares. Memory outlives the session: the memory tools answer
from the record, and so does the recall that opens a turn (:class:`RecordedRecall`,
:mod:`troupe.runtime.agent.recall_turn`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.agent.mailbox import Mailbox
from troupe.runtime.errors import ProviderError, RunError
from troupe.runtime.llm.scripted import ScriptedModel, stream_text
from troupe.runtime.llm.types import LLMClient, LLMRequest, LLMResponse, TokenCallback, ToolCall
from troupe.runtime.messages import Envelope
from troupe.runtime.redact import redact_text
from troupe.tools.spec import Execution, Tool

REQUEST_PREVIEW = 2_000
"""How much of a request's last message ``llm.request`` records (and a replay compares)."""
SERVICE_TOOL_MODULES = ("troupe.tools.builtins.blackboard", "troupe.tools.builtins.tasks", "troupe.tools.builtins.messaging",
                        "troupe.runtime.planning.tools")
"""Tools that only use the session's own services: a replay runs them for real (the plan tools make tasks and
write the blackboard; a planner's ``reflect`` writes project memory and is answered from the record)."""

OVERRIDE = "override"
"""The ``event_id`` of a result a fork's ``--tool-result`` put in place of the recorded one."""

_IDS = re.compile(r"\b[tmsr]-[0-9a-f]{16,32}\b")
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?")


def masked(text: str) -> str:
    """``text`` with random ids (``t-…``, ``m-…``, ``s-…``, ``r-…``) and timestamps masked: what a replay
    compares (a replayed session makes new ids and runs at another time)."""
    return _TIMES.sub("<time>", _IDS.sub("<id>", text))


class ReplayDivergenceError(RunError):
    """The replay left the recorded path: a request the record does not hold, or a call it never made."""


class RecordedCall(BaseModel):
    """One recorded model call of an agent."""

    messages: int | None = None
    """How many messages its request held (``llm.request``; ``None``: not recorded)."""
    last: str | None = None
    """Its request's last message, cut to :data:`REQUEST_PREVIEW` characters."""
    response: LLMResponse | None = None
    """What the model answered (``None`` when the call failed: see ``error``)."""
    error: dict[str, Any] | None = None
    """A failed call's ``llm.error`` payload (``error``, ``type``, ``reason``, ``http_status``)."""
    event_id: str = ""
    """The recorded ``llm.response`` or ``llm.error`` event."""
    truncated: bool = False
    """The record cut the response: it is served as cut (the replay cannot be exact)."""


class RecordedResult(BaseModel):
    """One recorded tool outcome, as the model saw it."""

    ok: bool
    content: str
    error_type: str | None = None
    event_id: str = ""
    truncated: bool = False


class RecordedMessage(BaseModel):
    """One message of a recorded turn's batch (``message.delivered``): who sent it, its kind and text."""

    sender: str
    kind: str
    content: str
    """Cut to 2,000 characters, as recorded."""

    def matches(self, envelope: Envelope) -> bool:
        if envelope.sender != self.sender or str(envelope.kind) != self.kind:
            return False
        recorded, text = masked(self.content), envelope.content[:2000]
        return masked(text) == recorded or masked(redact_text(text)[:2000]) == recorded


class RecordedApproval(BaseModel):
    """How a recorded approval of a tool call was decided (``approval.decided``)."""

    approved: bool
    by: str = "client"
    reason: str = ""


class RecordedRecall(BaseModel):
    """The memory recalled into one recorded turn's context (``memory.recalled``, source ``turn``)."""

    turn: int
    """The agent's turn, as the index of its batch in :attr:`AgentRecording.batches` (from 0)."""
    ids: list[str] = Field(default_factory=list)
    """The entries recalled, best first."""
    text: str | None = None
    """The message it put into the context (empty: nothing fit); ``None``: recorded before events kept it
    (``memory.recalled`` v1), so a replay can only check a live recall's entries against ``ids``."""
    tainted: list[dict[str, Any]] = Field(default_factory=list)
    """Risk scoring: the recalled entries a tainted agent wrote (the reader reads them as untrusted)."""
    query: str = ""
    tokens: int = 0
    left_out: int = 0
    event_id: str = ""


class AgentRecording(BaseModel):
    """What one agent's replay is served (crosses processes inside the session's spec)."""

    calls: list[RecordedCall] = Field(default_factory=list)
    results: dict[str, RecordedResult] = Field(default_factory=dict)
    """Recorded tool outcomes by tool call id (a fork's ``--tool-result`` replaces one)."""
    batches: list[list[RecordedMessage]] = Field(default_factory=list)
    """The messages each recorded turn took from the mailbox, in order: a replay's turns take the same
    batches (messages that arrive at other times than they did make no other turns)."""
    approvals: dict[str, RecordedApproval] = Field(default_factory=dict)
    """Recorded approval decisions by tool call id: a replay decides them again without asking anyone."""
    recalls: list[RecordedRecall] = Field(default_factory=list)
    """The memory recalled at the start of its recorded turns (a turn without one recalled nothing): a replay
    serves these, not what the memory holds by then."""
    live_after: int | None = None
    """A fork: the model calls from this index on are answered live, and tool calls without a recorded
    result run for real. ``None``: a pure replay (nothing runs live; a call off the record is a divergence)."""


class ReplayPlan(BaseModel):
    """A session played back from another's record (``SessionSpec.replay``)."""

    source: str
    """The recorded session."""
    agents: dict[str, AgentRecording] = Field(default_factory=dict)
    """Each agent's record, by agent id (an agent without one answers live in a fork, else diverges)."""
    live: bool = False
    """A fork: past the record, agents go on with their live models."""

    def recording(self, agent: str) -> AgentRecording:
        rec = self.agents.get(agent)
        if rec is None:
            rec = AgentRecording(live_after=0 if self.live else None)
        return rec


def is_override(result: RecordedResult | None) -> bool:
    """A fork's ``--tool-result`` in place of the recorded one (asks for no approval: nothing runs)."""
    return result is not None and result.event_id == OVERRIDE


def is_service_tool(tool: Tool) -> bool:
    """A tool that only works on the session's own services: run for real in a replay."""
    module = getattr(tool.fn, "__module__", "") or ""
    return tool.spec.execution is Execution.INLINE and not tool.spec.scopes and module in SERVICE_TOOL_MODULES


class RecordedClient:
    """An agent's model in a replay: the recorded answers in order, then (a fork) the live model."""

    def __init__(self, agent: str, recording: AgentRecording, live: Callable[[], LLMClient] | None = None,
                 *, source: str = "") -> None:
        self.agent = agent
        self.recording = recording
        self._live_factory = live
        self._live: LLMClient | None = None
        self.source = source
        self.served = 0
        """Recorded answers handed out so far."""
        self.model_name = "replay"

    @property
    def live(self) -> bool:
        after = self.recording.live_after
        return after is not None and (self.served >= after or self.served >= len(self.recording.calls))

    def _live_client(self) -> LLMClient:
        if self._live is None:
            if self._live_factory is None:
                raise ReplayDivergenceError(f"agent {self.agent!r}: the fork has no live model to hand over to", agent=self.agent)
            self._live = self._live_factory()
            self.model_name = self._live.model_name
            if isinstance(self._live, ScriptedModel):  # a script goes on where the record left it
                self._live.calls = min(self.served, len(self._live.steps))
        return self._live

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        if self.live:
            return await self._live_client().complete(request, on_token=on_token)
        calls = self.recording.calls
        n = self.served
        if n >= len(calls):
            raise ReplayDivergenceError(
                f"agent {self.agent!r}: model call {n + 1} is not in the record of session {self.source} "
                f"(it holds {len(calls)}); last message: {masked(_last(request))[:200]!r}",
                agent=self.agent, call=n + 1)
        rec = calls[n]
        self._check(rec, request, n)
        self.served += 1
        if rec.response is None:
            error = rec.error or {}
            raise ProviderError(str(error.get("error") or "recorded model failure"), reason=str(error.get("reason") or "error"),
                                status=error.get("http_status"), model=self.model_name)
        response = rec.response.model_copy(deep=True)
        await stream_text(response.text, on_token)
        return response

    def _check(self, rec: RecordedCall, request: LLMRequest, n: int) -> None:
        got = len(request.messages)
        if rec.messages is not None and got != rec.messages:
            raise ReplayDivergenceError(
                f"agent {self.agent!r}: model call {n + 1} asks with {got} messages; the record has {rec.messages}",
                agent=self.agent, call=n + 1)
        last = _last(request)[:REQUEST_PREVIEW]
        if rec.last is not None and masked(last) != masked(rec.last):
            raise ReplayDivergenceError(
                f"agent {self.agent!r}: model call {n + 1}'s last message differs from the record: "
                f"replayed {masked(last)[:300]!r}, recorded {masked(rec.last)[:300]!r}", agent=self.agent, call=n + 1)

    async def aclose(self) -> None:
        if self._live is not None:
            await self._live.aclose()


def _last(request: LLMRequest) -> str:
    return (request.messages[-1].content or "") if request.messages else ""


class BatchReplay:
    """An agent's turns in a replay take the batches its record took: the next turn waits until every
    message of the next recorded batch has arrived, then takes exactly those, in the recorded order
    (the others wait for a later turn). Past the recorded batches (a fork going on live), a turn takes
    whatever is queued."""

    def __init__(self, batches: list[list[RecordedMessage]]) -> None:
        self.batches = batches
        self.taken = 0
        self.current: int | None = None
        """The recorded batch the turn under way took (its index); ``None``: a turn past the record."""

    def take(self, mailbox: Mailbox) -> list[Envelope]:
        """The next batch; empty (and the mailbox waits for the next arrival) while it is incomplete."""
        if self.taken >= len(self.batches):
            self.current = None
            return mailbox.take_all()
        queued = mailbox.queued()
        picked: list[Envelope] = []
        ids: set[str] = set()
        for want in self.batches[self.taken]:
            found = next((e for e in queued if e.id not in ids and want.matches(e)), None)
            if found is None:
                mailbox.settle()
                return []
            picked.append(found)
            ids.add(found.id)
        mailbox.discard(lambda e: e.id in ids)
        self.current = self.taken
        self.taken += 1
        return picked


class ToolReplay:
    """Recorded tool outcomes of one agent (see :mod:`troupe.runtime.agent.toolexec`), its recorded
    approval decisions, and its recorded turn batches (:class:`BatchReplay`)."""

    def __init__(self, agent: str, recording: AgentRecording, client: RecordedClient | None = None) -> None:
        self.agent = agent
        self.recording = recording
        self.client = client
        self.batches = BatchReplay(recording.batches)

    def approval(self, call: ToolCall) -> RecordedApproval | None:
        """The recorded decision on ``call``'s approval; ``None`` in a fork without one (ask for real).
        A pure replay without one diverges: the call did not need an approval when it was recorded."""
        found = self.recording.approvals.get(call.id)
        if found is None and self.recording.live_after is None:
            raise ReplayDivergenceError(
                f"agent {self.agent!r}: tool call {call.id} ({call.name}) needs an approval the record does not hold",
                agent=self.agent, tool=call.name)
        return found

    def recall(self) -> RecordedRecall | None:
        """The memory recalled at the start of the recorded turn under way (``None``: it recalled nothing).
        Raises ``LookupError`` for a turn past the record (a fork going on live: recall from memory)."""
        turn = self.batches.current
        if turn is None:
            raise LookupError("a turn past the record")
        return next((r for r in self.recording.recalls if r.turn == turn), None)

    def outcome(self, call: ToolCall, tool: Tool) -> RecordedResult | None:
        """The call's recorded outcome; ``None``: run it (a session service, or past a fork's point).

        A fork's plan holds the results recorded before its point only (and its ``--tool-result``
        overrides, which win even for a service tool)."""
        found = self.recording.results.get(call.id)
        if found is not None and (found.event_id == OVERRIDE or not is_service_tool(tool)):
            return found
        if is_service_tool(tool) or self.recording.live_after is not None:
            return None
        raise ReplayDivergenceError(
            f"agent {self.agent!r}: tool call {call.id} ({call.name}) has no recorded result", agent=self.agent, tool=call.name)


def replay_parts(plan: ReplayPlan, agent: str, live: Callable[[], LLMClient]) -> tuple[RecordedClient, ToolReplay]:
    """The model client and tool replay of ``agent`` in a session played back by ``plan``."""
    recording = plan.recording(agent)
    client = RecordedClient(agent, recording, live if plan.live else None, source=plan.source)
    return client, ToolReplay(agent, recording, client)


__all__ = [
    "OVERRIDE",
    "AgentRecording",
    "BatchReplay",
    "RecordedApproval",
    "RecordedCall",
    "RecordedClient",
    "RecordedMessage",
    "RecordedRecall",
    "RecordedResult",
    "ReplayDivergenceError",
    "ReplayPlan",
    "ToolReplay",
    "is_override",
    "is_service_tool",
    "masked",
    "replay_parts",
]
