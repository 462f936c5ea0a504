"""Run one turn's tool calls concurrently; results come back in call order.

Every call passes the policy first, in the agent's own process, so a denied call never leaves
it: the tool must exist and be granted to the agent, its permission level and scopes must be
held, its arguments must validate, and a tool that needs approval waits for the session's
client. Then the dispatcher runs it under the scheduler's caps, timeout and retries.

Errors the model caused (bad arguments, a failing tool, a timeout, a denial) become tool results
the model reads; run failures (budget, cancellation) propagate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.agent.dispatch import mcp_request
from troupe.runtime.agent.guardrails import check_permission, refuse_risky, request_approval
from troupe.runtime.agent.mcp_events import emit_client_requests, session_asker, session_updater
from troupe.runtime.agent.recorded import is_override
from troupe.runtime.agent.risk import note_result, score_call
from troupe.runtime.agent.scheduler import ToolJob, idempotency_key
from troupe.runtime.agent.taint import Taint
from troupe.runtime.errors import (
    ModelVisibleError,
    PermissionDeniedError,
    RunError,
    ToolExecutionError,
    UnknownToolCallError,
)
from troupe.runtime.events import (
    Emitter,
    GuardrailDeniedPayload,
    LLMResponsePayload,
    ToolCallPayload,
    ToolErrorPayload,
    ToolProgressPayload,
    ToolResultPayload,
)
from troupe.runtime.events.payload import clip
from troupe.runtime.ids import IdScope, current_id_scope
from troupe.runtime.llm.types import TOOL_ERROR_PREFIX, ChatMessage, ToolCall
from troupe.runtime.redact import redact_text
from troupe.tools.context import ToolContext
from troupe.tools.spec import Execution, Tool

MAX_RESULT_CHARS = 16_000
"""Cap on the text one tool result gives the model; the rest is cut with a note that says how much."""
_PREVIEW = 2_000
MAX_STRUCTURED_CHARS = 8_000
"""Cap on an MCP result's structured content as recorded in its ``tool.result`` event."""


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
    text = redact_text(text)  # before cutting: a secret cut in two would no longer be found
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[truncated: {len(text) - MAX_RESULT_CHARS} more characters]"
    return text


class _Recorded(Exception):
    """Not an error: a replay's recorded outcome, carried out of the try block."""

    def __init__(self, outcome: ToolOutcome) -> None:
        self.outcome = outcome


@dataclass(frozen=True)
class ToolRun:
    """What running one round's tool calls needs besides the calls: the agent's unchanged
    :class:`~troupe.runtime.agent.deps.AgentDeps` plus the round's own parts."""

    deps: AgentDeps
    make_ctx: Callable[[ToolCall], ToolContext]
    emit: Emitter
    """The agent's emitter (it adds the task the agent is working on)."""
    parent_event_id: str | None = None
    """The ``llm.response`` event that asked for these calls."""
    key_prefix: str = ""
    """Makes idempotency keys unique per turn and round (``"<turn>.<round>"``)."""
    charge: Callable[..., Awaitable[None]] | None = None
    journal: Any | None = None
    """The turn's :class:`troupe.runtime.agent.loop.Journal` when the session is checkpointed: a result recorded
    there is not run again when a crash replays the turn."""
    taint: Taint | None = None
    """The agent's taint (:mod:`troupe.runtime.agent.taint`): scores its calls, and records what it reads
    from untrusted sources."""

    @property
    def tools(self) -> Mapping[str, Tool]:
        return self.deps.tools


def _not_granted(run: ToolRun, call: ToolCall) -> PermissionDeniedError:
    """A call to a tool the session has but this agent may not use (not in its ``tools``, or disabled by its
    MCP server's config): recorded as ``guardrail.denied`` (``not_granted``); it never runs."""
    message = (f"permission denied: agent {run.deps.spec.id!r} was not granted tool {call.name!r}; "
               f"your tools are: {', '.join(sorted(run.tools)) or 'none'}")
    run.emit(GuardrailDeniedPayload(id=call.id, reason="not_granted", error=message), tool=call.name, status="denied")
    return PermissionDeniedError(message, tool=call.name, reason="not_granted")


def _check(run: ToolRun, call: ToolCall, tool: Tool | None) -> Tool:
    if tool is not None and getattr(tool, "disabled", False):
        raise _not_granted(run, call)
    if tool is None:
        if call.name in run.deps.session_tools:
            raise _not_granted(run, call)
        raise UnknownToolCallError(
            f"there is no tool {call.name!r}; your tools are: {', '.join(sorted(run.tools)) or 'none'}", tool=call.name
        )
    try:
        check_permission(run.deps.spec, tool.spec)
    except PermissionDeniedError as e:
        run.emit(GuardrailDeniedPayload(id=call.id, reason=e.fields.get("reason", "permission"), error=e.message),
                 tool=call.name, status="denied")
        raise
    return tool


async def _run_one(run: ToolRun, index: int, call: ToolCall) -> ToolOutcome:
    journal_key = f"tool:{run.key_prefix}:{index}"
    recorded = run.journal.get(journal_key) if run.journal is not None else None
    if recorded is not None:
        return _replayed(run, call, recorded)
    started = time.perf_counter()
    emit = run.emit
    risk = score_call(getattr(run.tools.get(call.name), "spec", None), call.arguments, run.deps.risk, taint=run.taint,
                      workspace=run.deps.workspace.path_for(run.deps.session_id))
    arguments, cut = clip(call.arguments)
    emit(ToolCallPayload(id=call.id, arguments=arguments, **({"risk": risk.event()} if risk else {}),
                         **({"truncated": True} if cut else {})),
         tool=call.name, parent_event_id=run.parent_event_id)
    extra: dict[str, Any] = {}
    # Ids this call makes (messages, service calls) are the same when a crash replays its turn
    # (the turn's scope names the session, the agent and the turn).
    turn_scope = current_id_scope()
    if turn_scope is not None:
        IdScope(f"{turn_scope.prefix}:tool:{run.key_prefix}:{index}:{call.id}").enter()
    ended = False
    try:
        tool = _check(run, call, run.tools.get(call.name))
        kwargs = tool.validate(call.parsed_arguments())
        if risk is not None:
            refuse_risky(tool.spec, call, risk, deny_at=run.deps.risk.deny_at, emit=emit)
        kept = run.deps.replay.outcome(call, tool) if run.deps.replay is not None else None
        ctx = run.make_ctx(call)
        end_turn = ctx.end_turn

        def ending() -> None:
            nonlocal ended
            ended = True
            end_turn()

        ctx.end_turn = ending
        ctx.idempotency_key = idempotency_key(ctx.session_id, ctx.agent, run.key_prefix, index, call.id)
        if (tool.spec.needs_approval or (risk is not None and risk.decision == "ask")) and not is_override(kept):
            await request_approval(ctx, tool.spec, call, timeout_s=run.deps.approval_timeout_s, emit=emit, risk=risk,
                                   recorded=run.deps.replay.approval(call) if run.deps.replay is not None else None)
        if kept is not None:  # a replay: the recorded outcome (after the recorded approval), not run
            raise _Recorded(ToolOutcome(call, kept.ok, kept.content, kept.error_type))
        job = ToolJob.for_call(tool.spec, kwargs, key=ctx.idempotency_key, session_id=str(ctx.session_id),
                               agent=str(ctx.agent), call_id=call.id, checkpoints=run.deps.checkpoints,
                               secrets=run.deps.secrets)
        mcp = mcp_request(tool, ctx, run.deps.profile) if tool.spec.execution is Execution.MCP else None
        live = _LiveProgress(run, call) if mcp is not None else None
        async with run.deps.snapshot(tool.spec) if run.deps.snapshot is not None else contextlib.nullcontext():
            if live is None:
                value = await run.deps.dispatcher.run(tool, job, ctx, mcp)  # snapshotted first when it writes the workspace
            else:  # each progress notification is a tool.progress event as it arrives
                value = await run.deps.dispatcher.run(tool, job, ctx, mcp, on_progress=live,
                                                      on_elicit=session_asker(ctx, call.name, call.id),
                                                      **_subscriber(run, ctx, mcp))
        if mcp is not None:
            value = await _mcp_value(run, call, value, extra, live.emitted if live is not None else 0)
    except (RunError, asyncio.CancelledError) as stopped:  # the run ends: still close the call in the lake
        cancelled = isinstance(stopped, asyncio.CancelledError)
        emit(ToolErrorPayload(id=call.id, error_type="cancelled" if cancelled else type(stopped).__name__,
                              result=f"{TOOL_ERROR_PREFIX}the call was stopped: "
                                     f"{'the turn was cancelled' if cancelled else stopped}"),
             tool=call.name, status="cancelled" if cancelled else "error",
             duration_ms=(time.perf_counter() - started) * 1e3, parent_event_id=run.parent_event_id)
        raise
    except _Recorded as kept:
        outcome = kept.outcome
    except ModelVisibleError as e:
        outcome = ToolOutcome(call, False, f"{TOOL_ERROR_PREFIX}{e.message}", type(e).__name__, (time.perf_counter() - started) * 1e3)
    except Exception as e:  # a tool's own bug is the model's problem to route around, not a crash
        outcome = ToolOutcome(
            call, False, f"{TOOL_ERROR_PREFIX}tool {call.name!r} raised {type(e).__name__}: {e}", type(e).__name__,
            (time.perf_counter() - started) * 1e3,
        )
    else:
        outcome = ToolOutcome(call, True, render_result(value), None, (time.perf_counter() - started) * 1e3)
    if not outcome.ok:  # an error that echoes a secret reaches no model, no journal (render_result redacted results)
        outcome = replace(outcome, content=redact_text(outcome.content))
    if outcome.ok or outcome.error_type == "ToolExecutionError":  # what the tool said, not a refusal
        note_result(getattr(run.tools.get(call.name), "spec", None), outcome.content, run.deps.risk, run.taint)
    if run.journal is not None:
        await run.journal.record(journal_key, {"ok": outcome.ok, "content": outcome.content,
                                               "error_type": outcome.error_type, "end_turn": ended})
    emit(
        (ToolResultPayload if outcome.ok else ToolErrorPayload)(
            id=call.id, error_type=outcome.error_type, **_result_fields(outcome.content), **extra),
        tool=call.name,
        status="ok" if outcome.ok else "error",
        duration_ms=outcome.duration_ms,
        parent_event_id=run.parent_event_id,
    )
    return outcome


def _replayed(run: ToolRun, call: ToolCall, recorded: dict[str, Any]) -> ToolOutcome:
    """A call whose result the turn's journal already holds (a replay after a crash): not run again."""
    outcome = ToolOutcome(call, bool(recorded["ok"]), str(recorded["content"]), recorded.get("error_type"))
    if outcome.ok or outcome.error_type == "ToolExecutionError":
        note_result(getattr(run.tools.get(call.name), "spec", None), outcome.content, run.deps.risk, run.taint)
    if recorded.get("end_turn"):
        run.make_ctx(call).end_turn()
    run.emit((ToolResultPayload if outcome.ok else ToolErrorPayload)(
                 id=call.id, error_type=outcome.error_type, replayed=True, **_result_fields(outcome.content)),
             tool=call.name, status="replayed", parent_event_id=run.parent_event_id)
    return outcome


def _result_fields(content: str) -> dict[str, Any]:
    """A result's ``result`` (cut to ``RECORD_CHARS``) and, when it was cut, ``truncated``."""
    result, cut = clip(content)
    return {"result": result, "truncated": True} if cut else {"result": result}


def _subscriber(run: ToolRun, ctx: Any, mcp: Any) -> dict[str, Any]:
    """A ``subscribe_resource`` call also gives who is told of each update (the agent, through its mailbox)."""
    return {"on_update": session_updater(run.deps.emit, ctx)} if mcp.tool == "subscribe_resource" else {}  # specs.SUBSCRIBE


class _LiveProgress:
    """An MCP call's ``on_progress``: each notification becomes a ``tool.progress`` event as it arrives."""

    __slots__ = ("call", "emitted", "run")

    def __init__(self, run: ToolRun, call: ToolCall) -> None:
        self.run, self.call, self.emitted = run, call, 0

    def __call__(self, note: dict[str, Any]) -> None:
        self.emitted += 1
        self.run.emit(ToolProgressPayload(id=self.call.id, **note), tool=self.call.name)


async def _mcp_value(run: ToolRun, call: ToolCall, result: Any, extra: dict[str, Any], live: int = 0) -> Any:
    """Record what an MCP call brought besides its content (the progress not already recorded live, sampling),
    then unwrap it."""
    for note in result.progress[live:]:
        run.emit(ToolProgressPayload(id=call.id, **note), tool=call.name)
    tokens = 0
    for sample in result.sampling:
        tokens += int(sample.get("tokens_in") or 0) + int(sample.get("tokens_out") or 0)
        run.emit(LLMResponsePayload(source=f"mcp:{call.name.split('__', 1)[0]}", sampling_for=call.id),
                 model=sample.get("model"), tokens_in=sample.get("tokens_in"), tokens_out=sample.get("tokens_out"),
                 status="ok" if sample.get("ok", True) else "error")
    if result.sampling and run.charge is not None:
        await run.charge(tokens=tokens, llm_calls=len(result.sampling))
    emit_client_requests(run.emit, call.id, call.name, result)
    if result.blocks:
        extra["blocks"] = result.blocks[:20]
    if result.structured is not None:
        extra["structured"] = _bounded(result.structured)
    if result.is_error:
        raise ToolExecutionError(result.text or f"MCP tool {call.name!r} reported an error", tool=call.name)
    return result.text


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` for an event payload, or a preview of its JSON when that is too big for one row."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= MAX_STRUCTURED_CHARS:
        return value
    return {"truncated": True, "chars": len(text), "preview": redact_text(text)[:_PREVIEW]}


def _lane(run: ToolRun, index: int, call: ToolCall) -> str:
    """The calls of one lane run one after another, in call order; lanes run concurrently. Every call
    is a lane of its own, but the calls to a ``sequential`` MCP server share one, and an agent with
    ``parallel_tool_calls: false`` has a single lane."""
    if not run.deps.spec.parallel_tool_calls:
        return "all"
    tool = run.tools.get(call.name)
    cfg = getattr(tool, "cfg", None)
    if tool is not None and tool.spec.execution is Execution.MCP and getattr(cfg, "sequential", False):
        return f"mcp:{getattr(tool, 'server', '')}"
    return f"#{index}"


async def execute_calls(calls: Sequence[ToolCall], run: ToolRun) -> list[ToolOutcome]:
    """Run ``calls`` concurrently (but in order within a lane, see :func:`_lane`) and return their
    outcomes in call order."""
    lanes: dict[str, list[int]] = {}
    for i, call in enumerate(calls):
        lanes.setdefault(_lane(run, i, call), []).append(i)
    outcomes: dict[int, ToolOutcome] = {}

    async def in_order(indexes: list[int]) -> None:
        for i in indexes:
            outcomes[i] = await _run_one(run, i, calls[i])

    await asyncio.gather(*(in_order(ix) for ix in lanes.values()))
    return [outcomes[i] for i in range(len(calls))]


__all__ = ["MAX_RESULT_CHARS", "MAX_STRUCTURED_CHARS", "ToolOutcome", "ToolRun", "execute_calls", "render_result"]
