"""Payloads of the shared blackboard: a value written, a value expired."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from troupe.runtime.events.payload import Payload


class BlackboardPutPayloadV1(Payload):
    """``blackboard.put`` before it said whether its author was tainted (payload version 1)."""

    key: str
    version: int
    kind: str
    author: str
    value: Any
    value_truncated: bool
    ttl_s: float | None
    provenance: dict[str, Any] | None


class BlackboardPutPayload(Payload):
    """A new version of a key was written (``agent`` is its author)."""

    payload_version: ClassVar[int] = 2
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
    taint: list[str] = Field(default_factory=list)
    """Risk scoring: the untrusted sources its author had read when it wrote it (absent: none); whoever
    reads the value reads it as untrusted content from ``blackboard <key> from <author>``."""


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
