"""Run one turn's tool calls concurrently; results come back in call order.

Errors the model caused (bad arguments, a failing tool, a timeout, a denied permission) become
tool results the model reads; run failures (budget, cancellation) propagate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from runtime.config import AgentSpec
from runtime.errors import ModelVisibleError, PermissionDeniedError, RunError, ToolTimeoutError, UnknownToolCallError
from runtime.events import Emitter
from runtime.guardrails import check_permission
from runtime.llm.types import TOOL_ERROR_PREFIX, ChatMessage, ToolCall
from tools.context import ToolContext
from tools.spec import Tool

MAX_RESULT_CHARS = 16_000
_PREVIEW = 2_000


@dataclass(frozen=True)
class ToolOutcome:
    call: ToolCall
    ok: bool
    content: str
    error_type: str | None = None
    duration_ms: float = 0.0

    def to_message(self) -> ChatMessage:
        return ChatMessage(role="tool", content=self.content, tool_call_id=self.call.id, name=self.call.name)


def render_result(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[truncated: {len(text) - MAX_RESULT_CHARS} more characters]"
    return text


async def _run_one(
    call: ToolCall,
    *,
    tools: dict[str, Tool],
    agent: AgentSpec,
    make_ctx: Callable[[ToolCall], ToolContext],
    emit: Emitter,
    parent_event_id: str | None,
) -> ToolOutcome:
    started = time.perf_counter()
    emit("tool.call", tool=call.name, parent_event_id=parent_event_id, payload={"id": call.id, "arguments": call.arguments[:_PREVIEW]})
    try:
        tool = tools.get(call.name)
        if tool is None:
            raise UnknownToolCallError(
                f"there is no tool {call.name!r}; your tools are: {', '.join(sorted(tools)) or 'none'}", tool=call.name
            )
        try:
            check_permission(agent, tool.spec)
        except PermissionDeniedError as e:
            emit("guardrail.denied", tool=call.name, status="denied", payload={"id": call.id, "reason": e.message})
            raise
        arguments = call.parsed_arguments()
        ctx = make_ctx(call)
        try:
            value = await asyncio.wait_for(tool.invoke(arguments, ctx), timeout=tool.spec.timeout_s)
        except TimeoutError as e:
            raise ToolTimeoutError(f"tool {call.name!r} timed out after {tool.spec.timeout_s:g}s", tool=call.name) from e
    except (RunError, asyncio.CancelledError):
        raise
    except ModelVisibleError as e:
        outcome = ToolOutcome(call, False, f"{TOOL_ERROR_PREFIX}{e.message}", type(e).__name__, (time.perf_counter() - started) * 1e3)
    except Exception as e:  # a tool's own bug is the model's problem to route around, not a crash
        outcome = ToolOutcome(
            call, False, f"{TOOL_ERROR_PREFIX}tool {call.name!r} raised {type(e).__name__}: {e}", type(e).__name__,
            (time.perf_counter() - started) * 1e3,
        )
    else:
        outcome = ToolOutcome(call, True, render_result(value), None, (time.perf_counter() - started) * 1e3)
    emit(
        "tool.result" if outcome.ok else "tool.error",
        tool=call.name,
        status="ok" if outcome.ok else "error",
        duration_ms=outcome.duration_ms,
        parent_event_id=parent_event_id,
        payload={"id": call.id, "result": outcome.content[:_PREVIEW], "error_type": outcome.error_type},
    )
    return outcome


async def execute_calls(
    calls: Sequence[ToolCall],
    *,
    tools: dict[str, Tool],
    agent: AgentSpec,
    make_ctx: Callable[[ToolCall], ToolContext],
    emit: Emitter,
    parent_event_id: str | None = None,
) -> list[ToolOutcome]:
    """Run ``calls`` concurrently and return their outcomes in call order."""
    return list(
        await asyncio.gather(
            *(
                _run_one(c, tools=tools, agent=agent, make_ctx=make_ctx, emit=emit, parent_event_id=parent_event_id)
                for c in calls
            )
        )
    )


__all__ = ["MAX_RESULT_CHARS", "ToolOutcome", "execute_calls", "render_result"]
