"""What the test OpenAI-compatible server (:mod:`benchmarks.support.openai_server`) answers: one
dataclass per behaviour a test or benchmark enqueues, every request as recorded, and the JSON
shapes (chat completion, SSE chunks, usage) the behaviours are written as.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


# --- behaviours -------------------------------------------------------------------------------
@dataclass
class TextReply:
    """A text answer, streamed ``chunk_size`` characters at a time (or one JSON body)."""

    text: str
    chunk_size: int = 4
    delay_s: float = 0.0
    """Wait before sending anything (longer than the client's timeout -> a timeout)."""
    chunk_delay_s: float = 0.0
    finish_reason: str = "stop"
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    """Defaults to one per streamed chunk."""
    model: str | None = None
    """Model name in the response; defaults to the requested one."""


@dataclass
class ToolCallSpec:
    name: str
    arguments: str | dict[str, Any] = "{}"
    id: str | None = None

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class ToolCallsReply:
    """Tool calls streamed as deltas: the first delta of each call carries id and name, the
    arguments follow in ``fragments`` pieces; calls are interleaved like OpenAI's parallel calls."""

    calls: list[ToolCallSpec]
    text: str = ""
    fragments: int = 3
    delay_s: float = 0.0
    interleave: bool = True
    prompt_tokens: int = 11
    completion_tokens: int = 7
    model: str | None = None


@dataclass
class ErrorReply:
    status: int
    message: str = "simulated error"
    retry_after: float | str | None = None
    """Sent as the ``Retry-After`` header (seconds)."""
    delay_s: float = 0.0
    code: str | None = None
    """The body's ``error.code``; defaults to the status as text."""
    error_type: str = "test_error"
    retry_after_ms: float | None = None
    """Sent as the ``retry-after-ms`` header (OpenAI's finer-grained hint)."""


def context_length_error(limit: int = 8192, requested: int = 9000) -> ErrorReply:
    """The 400 OpenAI answers when the messages do not fit the model's context window."""
    return ErrorReply(
        400,
        f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
        f"{requested} tokens. Please reduce the length of the messages.",
        code="context_length_exceeded",
        error_type="invalid_request_error",
    )


@dataclass
class Disconnect:
    """Close the connection without answering (the client sees a connection error)."""

    delay_s: float = 0.0


@dataclass
class CutStream:
    """Stream the first ``after_chunks`` chunks of ``reply``, then stop: by closing the socket in the
    middle of the SSE body (``graceful=False``, the client sees a broken transfer), or by ending the
    body cleanly with no finish reason and no ``[DONE]`` (``graceful=True``, a proxy that gave up)."""

    reply: TextReply | ToolCallsReply
    after_chunks: int = 2
    graceful: bool = False
    delay_s: float = 0.0


@dataclass
class MalformedChunk:
    """Stream ``reply`` with an invalid JSON ``data:`` line after ``after_chunks`` chunks."""

    reply: TextReply | ToolCallsReply
    after_chunks: int = 1
    data: str = '{"id": "chatcmpl-test", "choices": [{"delta": {"content": "oops'
    delay_s: float = 0.0


@dataclass
class StreamError:
    """Start streaming ``reply``, then send an error event (``data: {"error": ...}``) and stop."""

    reply: TextReply | ToolCallsReply
    after_chunks: int = 1
    message: str = "the model crashed mid-generation"
    code: str | None = "server_error"
    error_type: str = "server_error"
    delay_s: float = 0.0


Behaviour = TextReply | ToolCallsReply | ErrorReply | Disconnect | CutStream | MalformedChunk | StreamError


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    received_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    """When the answer was fully written (or abandoned)."""
    client_closed_at: float | None = None
    """When the server saw the client close the connection before the answer was complete."""


# --- response shapes --------------------------------------------------------------------------
def chunk_envelope(model: str, choices: list[dict[str, Any]], *, usage: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}


def _split(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _fragments(text: str, n: int) -> list[str]:
    if not text:
        return [""]
    n = max(1, min(n, len(text)))
    step = -(-len(text) // n)
    return _split(text, step)


def usage_of(b: TextReply | ToolCallsReply) -> dict[str, int]:
    if isinstance(b, TextReply):
        out = b.completion_tokens if b.completion_tokens is not None else len(_split(b.text, b.chunk_size))
    else:
        out = b.completion_tokens
    return {"prompt_tokens": b.prompt_tokens, "completion_tokens": out, "total_tokens": b.prompt_tokens + out}


def sse_chunks(b: TextReply | ToolCallsReply, model: str) -> list[dict[str, Any]]:
    out = [chunk_envelope(model, [_choice({"role": "assistant", "content": ""})])]
    if isinstance(b, TextReply):
        out += [chunk_envelope(model, [_choice({"content": piece})]) for piece in _split(b.text, b.chunk_size)]
        out.append(chunk_envelope(model, [_choice({}, b.finish_reason)]))
        return out
    if b.text:
        out += [chunk_envelope(model, [_choice({"content": piece})]) for piece in _split(b.text, 4)]
    per_call: list[list[dict[str, Any]]] = []
    for index, call in enumerate(b.calls):
        call_id = call.id or f"call_srv_{index}"
        first = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        rest = [{"index": index, "function": {"arguments": frag}} for frag in _fragments(call.arguments_text(), b.fragments)]
        per_call.append([first, *rest])
    if b.interleave:
        deltas = [d for group in _zip_longest(per_call) for d in group]
    else:
        deltas = [d for group in per_call for d in group]
    out += [chunk_envelope(model, [_choice({"tool_calls": [d]})]) for d in deltas]
    out.append(chunk_envelope(model, [_choice({}, "tool_calls")]))
    return out


def _zip_longest(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    width = max((len(g) for g in groups), default=0)
    return [[g[i] for g in groups if i < len(g)] for i in range(width)]


def completion_body(b: Behaviour, request: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(b, (TextReply, ToolCallsReply))
    model = b.model or request.get("model") or "test-model"
    message: dict[str, Any] = {"role": "assistant", "content": b.text or None}
    finish = b.finish_reason if isinstance(b, TextReply) else "tool_calls"
    if isinstance(b, ToolCallsReply):
        message["tool_calls"] = [
            {"id": c.id or f"call_srv_{i}", "type": "function", "function": {"name": c.name, "arguments": c.arguments_text()}}
            for i, c in enumerate(b.calls)
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_of(b),
    }
