"""The agent loop: one turn = context -> LLM (streamed) -> tool calls -> repeat, until a reply.

Reads like the pseudocode in DESIGN.md; every step is an event. A model call that fails is an
``llm.error`` whose status is the reason (``rate_limited``, ``timeout``, ``context_length``...);
a ``context_length`` failure shrinks the context and retries the round (``context_retries`` times).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from troupe.runtime.agent.context import Context
from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.agent.taint import Taint
from troupe.runtime.agent.toolexec import ToolRun, execute_calls
from troupe.runtime.errors import ProviderError, RunError
from troupe.runtime.events import (
    AgentErrorPayload,
    ContextCompactedPayload,
    Emitter,
    LLMErrorPayload,
    LLMRequestPayload,
    LLMResponsePayload,
    LLMTokenPayload,
)
from troupe.runtime.events.payload import clip
from troupe.runtime.ids import unique_hex
from troupe.runtime.llm.types import ChatMessage, LLMClient, LLMResponse, ToolCall, ToolSchema
from troupe.tools.context import ToolContext

_PREVIEW = 2_000


@dataclass
class TurnResult:
    reply: str | None
    """The final text, or ``None`` when the agent chose to wait without replying."""
    rounds: int
    status: Literal["replied", "waiting", "max_rounds"]


class Journal(Protocol):
    """What a turn did so far, kept in the agent's checkpoint: a turn replayed after a crash takes
    model responses and tool results from here instead of calling the model or the tool again."""

    def get(self, key: str) -> Any | None: ...

    async def record(self, key: str, value: Any) -> None: ...


async def _no_charge(**usage: int) -> None:
    return None


async def _open_gate() -> None:
    return None


@dataclass
class Turn:
    """One turn: the agent's unchanged :class:`~troupe.runtime.agent.deps.AgentDeps` plus what is
    this turn's own (its context, number, journal and callbacks into the agent)."""

    deps: AgentDeps
    context: Context
    emit: Emitter
    """The agent's emitter (it adds the task the agent is working on)."""
    make_ctx: Callable[[ToolCall], ToolContext]
    charge: Callable[..., Awaitable[None]] = _no_charge
    """Records usage against the session's budgets; raises BudgetExceededError."""
    gate: Callable[[], Awaitable[None]] = _open_gate
    """Waits while the agent is paused (and while the event log is behind)."""
    number: int = 0
    """The agent's turn count, for idempotency keys."""
    journal: Journal | None = None
    """Set when the session is checkpointed (see :class:`Journal`)."""
    end_requested: bool = field(default=False)
    taint: Taint | None = None
    """The agent's taint (risk scoring): lasts across its turns."""

    @property
    def llm(self) -> LLMClient:
        return self.deps.llm


async def call_llm(turn: Turn, schemas: list[ToolSchema], round_no: int) -> tuple[LLMResponse, str]:
    request = turn.context.request(schemas, temperature=turn.deps.temperature)
    if not turn.deps.spec.parallel_tool_calls:
        request.parallel_tool_calls = False
    last = request.messages[-1]
    turn.emit(LLMRequestPayload(round=round_no, messages=len(request.messages), tools=[s.name for s in schemas],
                                last=(last.content or "")[:_PREVIEW]), model=turn.llm.model_name)

    def on_token(delta: str) -> None:
        turn.emit(LLMTokenPayload(text=delta), model=turn.llm.model_name)

    started = time.perf_counter()
    key = f"llm:{round_no}"
    recorded = turn.journal.get(key) if turn.journal is not None else None
    try:
        if recorded is not None:
            response = LLMResponse.model_validate(recorded)
        else:
            response = await turn.llm.complete(request, on_token=on_token if turn.deps.stream_tokens else None)
    except RunError as e:
        reason = str(e.fields.get("reason") or "error")
        turn.emit(LLMErrorPayload(round=round_no, error=e.message, type=type(e).__name__, reason=reason,
                                  http_status=e.fields.get("status")),
                  model=turn.llm.model_name, status=reason, duration_ms=(time.perf_counter() - started) * 1e3)
        raise
    except Exception as e:  # an SDK bug or transport surprise is a provider failure, reported as ours
        turn.emit(LLMErrorPayload(round=round_no, error=str(e), type=type(e).__name__, reason="error"),
                  model=turn.llm.model_name, status="error", duration_ms=(time.perf_counter() - started) * 1e3)
        raise ProviderError(f"model call failed: {type(e).__name__}: {e}", model=turn.llm.model_name, reason="error") from e
    if recorded is None and turn.journal is not None:
        await turn.journal.record(key, response.model_dump(mode="json"))
    event_id = unique_hex()
    text, cut = clip(response.text)
    calls = [(c, *clip(c.arguments)) for c in response.tool_calls]
    turn.emit(
        LLMResponsePayload(
            round=round_no,
            text=text,
            tool_calls=[{"id": c.id, "name": c.name, "arguments": arguments} for c, arguments, _ in calls],
            finish_reason=response.finish_reason,
            profile=response.profile,
            **({"truncated": True} if cut or any(c for *_, c in calls) else {}),
        ),
        event_id=event_id,
        model=response.model or turn.llm.model_name,
        duration_ms=(time.perf_counter() - started) * 1e3,
        tokens_in=response.usage.tokens_in,
        tokens_out=response.usage.tokens_out,
        status="ok" if recorded is None else "replayed",
    )
    await turn.charge(tokens=response.usage.tokens_in + response.usage.tokens_out, llm_calls=1)
    return response, event_id


async def call_llm_fitting(turn: Turn, schemas: list[ToolSchema], round_no: int) -> tuple[LLMResponse, str]:
    """:func:`call_llm`; after a context-length error, shrink the context and try the round again."""
    retries = turn.deps.context_retries
    for attempt in range(retries + 1):
        try:
            return await call_llm(turn, schemas, round_no)
        except ProviderError as e:
            if e.fields.get("reason") != "context_length":
                raise
            shrunk = turn.context.shrink() if attempt < retries else None
            if shrunk is None:
                if attempt == 0:
                    raise
                raise ProviderError(f"{e.message} (still too long after shrinking the context {attempt} time(s))",
                                    **e.fields) from None
            turn.emit(ContextCompactedPayload(**asdict(shrunk)))
    raise AssertionError("unreachable")


def history_message(response: LLMResponse) -> ChatMessage:
    """The response as it goes into the context. Tool-call arguments that are not a JSON object are
    kept as a string inside one (``{"invalid_arguments": ...}``): the call still gets its
    model-visible error, and servers that parse the history (vLLM's chat templates) don't fail on it."""
    message = response.to_message()
    if not any(not _json_object(c.arguments) for c in message.tool_calls):
        return message
    calls = [c if _json_object(c.arguments) else
             c.model_copy(update={"arguments": json.dumps({"invalid_arguments": c.arguments[:_PREVIEW]})})
             for c in message.tool_calls]
    return message.model_copy(update={"tool_calls": calls})


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text or "{}"), dict)
    except ValueError:
        return False


async def run_turn(turn: Turn) -> TurnResult:
    """Run LLM rounds until the model answers without tool calls, ends its turn, or hits the cap."""
    schemas = [t.spec.schema_for_model() for t in turn.deps.tools.values()]
    for round_no in range(1, turn.deps.spec.max_rounds + 1):
        await turn.gate()
        if compaction := turn.context.compact():
            turn.emit(ContextCompactedPayload(**asdict(compaction)))
        response, response_event = await call_llm_fitting(turn, schemas, round_no)
        turn.context.add(history_message(response))
        if not response.tool_calls:
            return TurnResult(response.text, round_no, "replied")
        await turn.charge(tool_calls=len(response.tool_calls))
        outcomes = await execute_calls(response.tool_calls, run=ToolRun(
            deps=turn.deps, make_ctx=turn.make_ctx, emit=turn.emit, parent_event_id=response_event,
            key_prefix=f"{turn.number}.{round_no}", charge=turn.charge, journal=turn.journal, taint=turn.taint,
        ))
        for outcome in outcomes:
            turn.context.add(outcome.to_message())
        if turn.end_requested:
            return TurnResult(None, round_no, "waiting")
    cap = turn.deps.spec.max_rounds
    turn.emit(AgentErrorPayload(error=f"no final answer after {cap} LLM rounds"), status="max_rounds")
    return TurnResult(f"[{turn.deps.spec.id} stopped after {cap} LLM rounds without a final answer]", cap, "max_rounds")


__all__ = ["Journal", "Turn", "TurnResult", "call_llm", "call_llm_fitting", "history_message", "run_turn"]
