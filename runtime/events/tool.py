"""Payloads of tool calls: the call, its result or error, and progress an MCP server reported."""

from __future__ import annotations

from typing import Any, Literal

from troupe.runtime.events.payload import Payload


class ToolCallPayload(Payload):
    """An agent calls a tool (``tool`` names it; ``parent_event_id`` is the ``llm.response`` that asked)."""

    event_type: Literal["tool.call"] = "tool.call"
    id: str
    """The tool call id the model gave (the same on its result)."""
    arguments: str
    """The arguments as the model wrote them (JSON text), cut to 2,000 characters."""


class ToolOutcomeFields(Payload):
    """What ``tool.result`` and ``tool.error`` both hold."""

    id: str
    """The tool call id."""
    result: str
    """What the model sees, cut to 2,000 characters (an error starts with the tool-error prefix)."""
    error_type: str | None
    """The error's class name; null for a result."""
    blocks: list[dict[str, Any]] | None = None
    """Non-text content an MCP tool returned (images, resources), at most 20."""
    structured: dict[str, Any] | None = None
    """An MCP tool's structured result (a preview when it is too big for one row)."""
    replayed: bool = False
    """True when the result came from the turn's journal after a crash (the tool did not run again)."""


class ToolResultPayload(ToolOutcomeFields):
    """A tool call succeeded (``status`` ``ok``, or ``replayed``; ``duration_ms`` set)."""

    event_type: Literal["tool.result"] = "tool.result"


class ToolErrorPayload(ToolOutcomeFields):
    """A tool call failed; the model sees the error and goes on (``status`` ``error`` or ``replayed``)."""

    event_type: Literal["tool.error"] = "tool.error"


class ToolProgressPayload(Payload):
    """An MCP server reported progress on a running tool call."""

    event_type: Literal["tool.progress"] = "tool.progress"
    id: str
    """The tool call id."""
    progress: int | float | None = None
    """Work done so far."""
    total: int | float | None = None
    """Total work, when the server knows it."""
    message: str | None = None
    """The server's progress message."""


__all__ = ["ToolCallPayload", "ToolErrorPayload", "ToolOutcomeFields", "ToolProgressPayload", "ToolResultPayload"]
