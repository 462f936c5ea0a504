"""Payloads of messages between agents: sent and delivered."""

from __future__ import annotations

from typing import Any, Literal

from troupe.runtime.events.payload import Payload


class MessageSentPayload(Payload):
    """An agent sent a message (``agent`` is the sender)."""

    event_type: Literal["message.sent"] = "message.sent"
    id: str
    """The message id (the same on its ``message.delivered``)."""
    to: str | None
    """The recipient; null when ``topic`` addresses a group."""
    topic: str | None
    """The topic it was published on, if any."""
    kind: str
    """``text``, ``task``, ``notice`` or ``control``."""
    content: str
    """Its text, cut to 2,000 characters."""


class MessageDeliveredPayload(Payload):
    """An agent took a message from its mailbox at the start of a turn (``agent`` is the recipient)."""

    event_type: Literal["message.delivered"] = "message.delivered"
    id: str
    """The message id."""
    sender: str
    """Who sent it (an agent, ``user`` or a service)."""
    kind: str
    """``text``, ``task``, ``notice`` or ``control``."""
    content: str
    """Its text, cut to 2,000 characters."""
    data: dict[str, Any]
    """Its structured data (a task's id, a notice's key, ``is_reply``)."""


__all__ = ["MessageDeliveredPayload", "MessageSentPayload"]
