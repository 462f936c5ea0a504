"""Payloads of the shared blackboard: a value written, a value expired."""

from __future__ import annotations

from typing import Any, Literal

from troupe.runtime.events.payload import Payload


class BlackboardPutPayload(Payload):
    """A new version of a key was written (``agent`` is its author)."""

    event_type: Literal["blackboard.put"] = "blackboard.put"
    key: str
    """The key."""
    version: int
    """Its new version (1 for the first write)."""
    kind: str
    """``fact``, ``artifact``, ``claim``, ... (what the value is)."""
    author: str
    """Who wrote it."""
    value: Any
    """The value (JSON), or a preview of it when too big for one row."""
    value_truncated: bool
    """Whether ``value`` is a preview."""
    ttl_s: float | None
    """Seconds until it expires; null = never."""
    provenance: dict[str, Any] | None
    """Where it came from (message id, tool call id, sources), if given."""


class BlackboardExpiredPayload(Payload):
    """A key's latest version expired (reported once, the first time it is seen expired)."""

    event_type: Literal["blackboard.expired"] = "blackboard.expired"
    key: str
    """The key."""
    version: int
    """The version that expired."""
    author: str
    """Who wrote it."""
    expires_at: str | None
    """When it expired (ISO 8601)."""


__all__ = ["BlackboardExpiredPayload", "BlackboardPutPayload"]
