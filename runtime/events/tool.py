"""Payloads of tool calls: the call, its result or error, and progress an MCP server reported."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from troupe.runtime.events.payload import Payload


class RiskScore(BaseModel):
    """A tool call's risk (see ``troupe.runtime.agent.risk``): in ``tool.call`` and ``approval.requested``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: int
    """0 to 100."""
    reasons: list[str]
    """What raised it, each with its contribution (``level L3 +20``)."""
    decision: Literal["allow", "ask", "deny"]
    """From the team's ``risk.ask_at`` / ``risk.deny_at`` (``allow`` without thresholds)."""


class ToolCallPayloadV1(Payload):
    """``tool.call`` before risk scores (payload version 1)."""

    id: str
    arguments: str


class ToolCallPayloadV2(Payload):
    """``tool.call`` before full records (payload version 2: arguments cut to 2,000 characters)."""

    id: str
    arguments: str
    risk: RiskScore | None = None


class ToolCallPayload(Payload):
    """An agent calls a tool (``tool`` names it; ``parent_event_id`` is the ``llm.response`` that asked)."""

    payload_version: ClassVar[int] = 3
    event_type: Literal["tool.call"] = "tool.call"
    id: str
    """The tool call id the model gave (the same on its result)."""
    arguments: str
    """The arguments as the model wrote them (JSON text), cut to ``RECORD_CHARS`` (20,000 characters)."""
    risk: RiskScore | None = None
    """The call's risk score, reasons and decision; null when ``risk.enabled`` is false, the tool is
    unknown or its arguments are not a JSON object."""
    truncated: bool = False
    """Set (true) when the arguments were cut."""


class ToolOutcomeFieldsV1(Payload):
    """``tool.result`` and ``tool.error`` before full records (payload version 1: cut to 2,000 characters)."""

    id: str
    result: str
    error_type: str | None
    blocks: list[dict[str, Any]] | None = None
    structured: dict[str, Any] | None = None
    replayed: bool = False


class ToolOutcomeFields(Payload):
    """What ``tool.result`` and ``tool.error`` both hold."""

    payload_version: ClassVar[int] = 2

    id: str
    """The tool call id."""
    result: str
    """What the model sees (an error starts with the tool-error prefix), cut to ``RECORD_CHARS``
    (20,000 characters; a result the model reads is at most 16,000 and a note)."""
    error_type: str | None
    """The error's class name; null for a result."""
    blocks: list[dict[str, Any]] | None = None
    """Non-text content an MCP tool returned (images, resources), at most 20."""
    structured: dict[str, Any] | None = None
    """An MCP tool's structured result (a preview when it is too big for one row)."""
    replayed: bool = False
    """True when the result came from the turn's journal after a crash (the tool did not run again)."""
    truncated: bool = False
    """Set (true) when the result was cut."""


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


__all__ = ["RiskScore", "ToolCallPayload", "ToolCallPayloadV1", "ToolCallPayloadV2", "ToolErrorPayload",
           "ToolOutcomeFields", "ToolOutcomeFieldsV1", "ToolProgressPayload", "ToolResultPayload"]
