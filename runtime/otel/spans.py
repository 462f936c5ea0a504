"""The spans a session's events become, as plain data (no OpenTelemetry import), and their ids.

A session is one trace: its trace id is derived from the session id, and each span's id from the
session id and what the span stands for (the session, an agent's turn, a model call, a tool call),
so exporting a session twice (live, then again from the lake) yields the same ids, which backends
that deduplicate by span id (Phoenix) keep once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]
"""What an OpenTelemetry attribute may hold: a scalar or a homogeneous list of scalars."""

SpanKind = Literal["internal", "client"]
StatusCode = Literal["unset", "ok", "error"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _digest(text: str, hex_chars: int) -> int:
    value = int(hashlib.sha256(text.encode()).hexdigest()[:hex_chars], 16)
    return value or 1  # an all-zero id is invalid in OpenTelemetry


def trace_id_for(session_id: str) -> int:
    """The 128-bit trace id of a session (the same in every export)."""
    return _digest(f"troupe-trace:{session_id}", 32)


def span_id_for(session_id: str, key: str) -> int:
    """The 64-bit id of the span ``key`` of a session (``session``, ``turn/<event id>``, ...)."""
    return _digest(f"troupe-span:{session_id}:{key}", 16)


def to_ns(ts: datetime) -> int:
    """A timestamp as nanoseconds since the Unix epoch (a naive one is read as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


@dataclass
class SpanEventRecord:
    """A point in time inside a span (a message, a task change, a blackboard write)."""

    name: str
    ts_ns: int
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass
class SpanRecord:
    """One span, ready to hand to an exporter (:func:`troupe.runtime.otel.export.to_sdk_spans`)."""

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    start_ns: int
    end_ns: int
    kind: SpanKind = "internal"
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    events: list[SpanEventRecord] = field(default_factory=list)
    status: StatusCode = "unset"
    status_message: str | None = None

    @property
    def operation(self) -> str | None:
        """``gen_ai.operation.name``: ``invoke_agent``, ``chat`` or ``execute_tool``."""
        value = self.attributes.get("gen_ai.operation.name")
        return value if isinstance(value, str) else None

    def end_at_least(self, ts_ns: int) -> None:
        if ts_ns > self.end_ns:
            self.end_ns = ts_ns


__all__ = [
    "AttributeValue",
    "SpanEventRecord",
    "SpanKind",
    "SpanRecord",
    "StatusCode",
    "span_id_for",
    "to_ns",
    "trace_id_for",
]
