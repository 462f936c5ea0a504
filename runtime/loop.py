"""The agent loop: one turn = context -> LLM (streamed) -> tool calls -> repeat, until a reply.

Reads like the pseudocode in DESIGN.md; every step is an event.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from runtime.config import AgentSpec, ModelProfile
from runtime.context import Context
from runtime.errors import ProviderError, RunError
from runtime.events import Emitter
from runtime.ids import unique_hex
from runtime.llm.types import LLMClient, LLMResponse, ToolCall, ToolSchema
from runtime.dispatch import Dispatcher
from runtime.toolexec import ToolRun, execute_calls
from tools.context import ToolContext
from tools.spec import Tool

_PREVIEW = 2_000


@dataclass
class TurnResult:
    reply: str | None
    """The final text, or ``None`` when the agent chose to wait without replying."""
    rounds: int
    status: Literal["replied", "waiting", "max_rounds"]


async def _no_charge(**usage: int) -> None:
    return None


async def _open_gate() -> None:
    return None


@dataclass
class Turn:
    """Everything one turn needs; built by the agent, plain objects only (no Ray)."""

    spec: AgentSpec
    llm: LLMClient
    context: Context
    tools: dict[str, Tool]
    emit: Emitter
    make_ctx: Callable[[ToolCall], ToolContext]
    charge: Callable[..., Awaitable[None]] = _no_charge
    """Records usage against the session's budgets; raises BudgetExceededError."""
    gate: Callable[[], Awaitable[None]] = _open_gate
    """Waits while the agent is paused."""
    stream_tokens: bool = False
    temperature: float | None = None
    dispatcher: Dispatcher | None = None
    """Where tool calls run (in this process when unset)."""
    number: int = 0
    """The agent's turn count, for idempotency keys."""
    approval_timeout_s: float = 300.0
    models: dict[str, ModelProfile] = field(default_factory=dict)
    profile: str | None = None
    end_requested: bool = field(default=False)


async def call_llm(turn: Turn, schemas: list[ToolSchema], round_no: int) -> tuple[LLMResponse, str]:
    request = turn.context.request(schemas, temperature=turn.temperature)
    last = request.messages[-1]
    turn.emit(
        "llm.request",
        model=turn.llm.model_name,
        payload={"round": round_no, "messages": len(request.messages), "tools": [s.name for s in schemas],
                 "last": (last.content or "")[:_PREVIEW]},
    )

    def on_token(delta: str) -> None:
        turn.emit("llm.token", model=turn.llm.model_name, payload={"text": delta})

    started = time.perf_counter()
    try:
        response = await turn.llm.complete(request, on_token=on_token if turn.stream_tokens else None)
    except RunError as e:
        turn.emit("llm.error", model=turn.llm.model_name, status="error", payload={"error": e.message, "type": type(e).__name__})
        raise
    except Exception as e:  # an SDK bug or transport surprise is a provider failure, reported as ours
        turn.emit("llm.error", model=turn.llm.model_name, status="error", payload={"error": str(e), "type": type(e).__name__})
        raise ProviderError(f"model call failed: {type(e).__name__}: {e}", model=turn.llm.model_name) from e
    event_id = unique_hex()
    turn.emit(
        "llm.response",
        event_id=event_id,
        model=response.model or turn.llm.model_name,
        duration_ms=(time.perf_counter() - started) * 1e3,
        tokens_in=response.usage.tokens_in,
        tokens_out=response.usage.tokens_out,
        status="ok",
        payload={
            "round": round_no,
            "text": response.text[:_PREVIEW],
            "tool_calls": [{"name": c.name, "arguments": c.arguments[:_PREVIEW]} for c in response.tool_calls],
            "finish_reason": response.finish_reason,
            "profile": response.profile,
        },
    )
    await turn.charge(tokens=response.usage.tokens_in + response.usage.tokens_out, llm_calls=1)
    return response, event_id


async def run_turn(turn: Turn) -> TurnResult:
    """Run LLM rounds until the model answers without tool calls, ends its turn, or hits the cap."""
    schemas = [t.spec.schema_for_model() for t in turn.tools.values()]
    for round_no in range(1, turn.spec.max_rounds + 1):
        await turn.gate()
        if compaction := turn.context.compact():
            turn.emit("context.compacted", payload=asdict(compaction))
        response, response_event = await call_llm(turn, schemas, round_no)
        turn.context.add(response.to_message())
        if not response.tool_calls:
            return TurnResult(response.text, round_no, "replied")
        await turn.charge(tool_calls=len(response.tool_calls))
        outcomes = await execute_calls(response.tool_calls, run=ToolRun(
            tools=turn.tools, agent=turn.spec, make_ctx=turn.make_ctx, emit=turn.emit,
            parent_event_id=response_event, dispatcher=turn.dispatcher, key_prefix=f"{turn.number}.{round_no}",
            approval_timeout_s=turn.approval_timeout_s, models=turn.models, profile=turn.profile, charge=turn.charge,
        ))
        for outcome in outcomes:
            turn.context.add(outcome.to_message())
        if turn.end_requested:
            return TurnResult(None, round_no, "waiting")
    cap = turn.spec.max_rounds
    turn.emit("agent.error", status="max_rounds", payload={"error": f"no final answer after {cap} LLM rounds"})
    return TurnResult(f"[{turn.spec.id} stopped after {cap} LLM rounds without a final answer]", cap, "max_rounds")


__all__ = ["Turn", "TurnResult", "call_llm", "run_turn"]
