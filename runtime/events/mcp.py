"""Payloads of what an MCP server asks of the client during a tool call: elicitation (input from the user)
and its log messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class ElicitationRequestedPayload(Payload):
    """An MCP server asked for the user's input during a tool call (``elicitation/create``): a form, or a URL
    to open (``agent``, ``tool``; ``status`` ``pending``)."""

    event_type: Literal["elicitation.requested"] = "elicitation.requested"
    id: str
    """The elicitation id (to answer with, while it is pending)."""
    call_id: str = ""
    """The tool call it came during (its ``tool.call`` event's ``id``)."""
    server: str
    """The MCP server that asked."""
    mode: Literal["form", "url"] = "form"
    """``form`` (fields to fill in) or ``url`` (a page to open, e.g. a sign-in)."""
    message: str
    """What the server asked, in its words (cut to 500 characters)."""
    fields: list[str] = Field(default_factory=list)
    """The form's field names (``form`` mode)."""
    url: str | None = None
    """The URL to open (``url`` mode)."""
    timeout_s: float | None = None
    """Declined when nobody answers within this long (the server's ``elicitation_timeout_s``)."""
    requested_schema: dict[str, Any] | None = None
    """The form's JSON schema (each field's type, title, description, default, enum), for a client to show it;
    set on requests the session answers live."""


class ElicitationAnsweredPayload(Payload):
    """An elicitation was answered (``status`` is the action: ``accept``, ``decline`` or ``cancel``). The
    values given are not recorded, only which fields they filled."""

    event_type: Literal["elicitation.answered"] = "elicitation.answered"
    id: str
    """The elicitation id."""
    call_id: str = ""
    """The tool call it came during."""
    action: Literal["accept", "decline", "cancel"]
    """What went back to the server."""
    by: str
    """``client`` (the session's client or the CLI prompt), ``policy`` (the team's ``approval_policy``),
    ``timeout``, ``session`` (it ended first), ``nobody`` (no one could answer), ``invalid`` (the answer did not
    fit the form's schema) or ``error``."""
    reason: str = ""
    """Why it was declined, when it was not the user's choice."""
    content_keys: list[str] = Field(default_factory=list)
    """The fields of an accepted form (defaults included)."""
    duration_ms: float | None = None
    """How long the answer took."""


class McpLogPayload(Payload):
    """A log message an MCP server sent (``notifications/message``) during a tool call (``status`` is its
    level)."""

    event_type: Literal["mcp.log"] = "mcp.log"
    server: str
    """The MCP server that sent it."""
    level: str
    """The RFC 5424 severity: ``debug``, ``info``, ``notice``, ``warning``, ``error``, ``critical``, ``alert``,
    ``emergency``."""
    logger: str | None = None
    """The server's logger name, if it gave one."""
    data: Any = None
    """The message (any JSON; cut to 2,000 characters when long)."""
    call_id: str = ""
    """The tool call it arrived during."""


class McpSubscriptionPayload(Payload):
    """An agent subscribed to an MCP server's resource (``<server>__subscribe_resource``), or unsubscribed
    (``status`` is the action). Its subscriptions end with its session."""

    event_type: Literal["mcp.subscription"] = "mcp.subscription"
    server: str
    """The MCP server."""
    uri: str
    """The resource."""
    action: Literal["subscribe", "unsubscribe"]
    """What the agent asked."""
    changed: bool = True
    """``False``: it was already subscribed (or, unsubscribing, was not)."""
    call_id: str = ""
    """The tool call that asked."""


class McpResourceUpdatedPayload(Payload):
    """A resource the agent subscribed to changed (the server's ``notifications/resources/updated``); the agent was
    sent a notice message."""

    event_type: Literal["mcp.resource_updated"] = "mcp.resource_updated"
    server: str
    """The MCP server."""
    uri: str
    """The resource that changed."""
    delivered: bool = True
    """Whether the notice reached the agent's mailbox (``False``: the agent is gone)."""


__all__ = ["ElicitationAnsweredPayload", "ElicitationRequestedPayload", "McpLogPayload", "McpResourceUpdatedPayload",
           "McpSubscriptionPayload"]
