"""Payloads of guardrails and approvals: a call denied, an approval asked for, an approval decided."""

from __future__ import annotations

from typing import ClassVar, Literal

from troupe.runtime.events.payload import Payload
from troupe.runtime.events.tool import RiskScore


class GuardrailDeniedPayload(Payload):
    """A tool call was refused before it ran (``tool``; ``status`` ``denied``); the model sees why."""

    event_type: Literal["guardrail.denied"] = "guardrail.denied"
    id: str
    """The tool call id."""
    reason: str
    """``not_granted`` (the agent may not use the tool: not in its ``tools``, or disabled by its MCP server's
    config), ``level`` (the agent's permission level is too low), ``scope``, ``approval``, ``risk`` (the
    call's risk score reached ``risk.deny_at``; ``error`` lists the reasons), ..."""
    error: str
    """The message the model sees."""
    approval_id: str | None = None
    """The approval that was denied (``reason`` ``approval``)."""


class ApprovalRequestedPayloadV1(Payload):
    """``approval.requested`` before risk scores (payload version 1)."""

    id: str
    agent: str
    tool: str
    arguments: str
    call_id: str
    timeout_s: float


class ApprovalRequestedPayload(Payload):
    """A tool call waits for the client's approval (``agent``, ``tool``; ``status`` ``pending``)."""

    payload_version: ClassVar[int] = 2
    event_type: Literal["approval.requested"] = "approval.requested"
    id: str
    """The approval id to answer with (``Session.approve`` / ``deny``)."""
    agent: str
    """The agent that wants to call the tool."""
    tool: str
    """The tool."""
    arguments: str
    """The call's arguments (JSON text), cut to 2,000 characters."""
    call_id: str
    """The tool call id."""
    timeout_s: float
    """Seconds until no answer counts as a denial."""
    risk: RiskScore | None = None
    """The call's risk score and reasons when risk scoring asked for the approval (or scored the call)."""


class ApprovalDecidedPayload(Payload):
    """An approval was decided (``status`` ``approved`` or ``denied``)."""

    event_type: Literal["approval.decided"] = "approval.decided"
    id: str
    """The approval id."""
    approved: bool
    """Whether the call may run."""
    by: str
    """``client``, ``timeout``, ``session`` (the session ended first) or ``policy`` (the team's approval policy)."""
    reason: str
    """The decider's reason."""
    call_id: str
    """The tool call id."""


__all__ = ["ApprovalDecidedPayload", "ApprovalRequestedPayload", "ApprovalRequestedPayloadV1", "GuardrailDeniedPayload"]
