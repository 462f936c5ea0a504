"""Payloads of model calls: request, streamed token, response, error, and a context compaction."""

from __future__ import annotations

from typing import ClassVar, Literal

from troupe.runtime.events.payload import Payload


class LLMRequestPayload(Payload):
    """An agent is about to call its model (``model`` names it)."""

    event_type: Literal["llm.request"] = "llm.request"
    round: int
    """The LLM round within the turn (1 for the first call)."""
    messages: int
    """How many chat messages the request holds."""
    tools: list[str]
    """The tools offered to the model."""
    last: str
    """The last message's text, cut to 2,000 characters."""


class LLMTokenPayload(Payload):
    """A streamed piece of the model's answer (ephemeral: live subscribers only, never in the lake)."""

    event_type: Literal["llm.token"] = "llm.token"
    text: str
    """The text delta."""


class LLMResponsePayloadV1(Payload):
    """``llm.response`` before full records (payload version 1: text and arguments cut to 2,000
    characters, tool calls without their ids)."""

    round: int | None = None
    text: str | None = None
    tool_calls: list[dict[str, str]] | None = None
    finish_reason: str | None = None
    profile: str | None = None
    source: str | None = None
    sampling_for: str | None = None


class LLMResponsePayload(Payload):
    """A model call returned (``duration_ms``, ``tokens_in``, ``tokens_out``; ``status`` ``ok`` or ``replayed``).

    Also recorded for each sampling request an MCP server made during a tool call: then only
    ``source`` and ``sampling_for`` are set.
    """

    payload_version: ClassVar[int] = 2
    event_type: Literal["llm.response"] = "llm.response"
    round: int | None = None
    """The LLM round within the turn."""
    text: str | None = None
    """The answer's text (cut to ``RECORD_CHARS``, 20,000 characters: then ``truncated`` is true)."""
    tool_calls: list[dict[str, str]] | None = None
    """The tool calls asked for: ``id``, ``name`` and ``arguments`` (cut to ``RECORD_CHARS``) each."""
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``tool_calls``, ``length``, ...)."""
    profile: str | None = None
    """The model profile that answered (after a fallback, not the first one tried)."""
    source: str | None = None
    """``mcp:<server>`` for a call an MCP server asked for (sampling)."""
    sampling_for: str | None = None
    """The tool call id during which an MCP server asked for this call."""
    truncated: bool = False
    """Set (true) when the text or an argument was cut: a replay of this response cannot be exact."""


class LLMErrorPayload(Payload):
    """A model call failed (``status`` is the reason; ``duration_ms`` set)."""

    event_type: Literal["llm.error"] = "llm.error"
    round: int
    """The LLM round within the turn."""
    error: str
    """The error message."""
    type: str
    """The error's class name (``ProviderError``, ...)."""
    reason: str
    """Why: ``rate_limit``, ``timeout``, ``context_length``, ``error``, ..."""
    http_status: int | str | None = None
    """The provider's HTTP status, when it answered with one."""


class ContextCompactedPayload(Payload):
    """An agent's context was shrunk to fit its model (old turns folded, long messages clipped)."""

    event_type: Literal["context.compacted"] = "context.compacted"
    removed_messages: int
    """Messages folded away."""
    tokens_before: int
    """Estimated context tokens before."""
    tokens_after: int
    """Estimated context tokens after."""
    clipped_messages: int = 0
    """Messages cut short (folding old turns was not enough)."""
    reason: str = "budget"
    """``budget`` (over ``context_tokens``) or ``context_length`` (the model refused the request)."""


__all__ = ["ContextCompactedPayload", "LLMErrorPayload", "LLMRequestPayload", "LLMResponsePayload", "LLMResponsePayloadV1",
           "LLMTokenPayload"]
