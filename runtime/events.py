"""The event schema: one typed row per action, the contract between producers and the lake.

Changing a column means bumping :data:`EVENT_SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.ids import unique_hex
from troupe.runtime.redact import may_hold_secret, redact

EVENT_SCHEMA_VERSION: Final = 1

EventType = Literal[
    "session.started",
    "session.finished",
    "session.resumed",
    "actor.restored",
    "message.sent",
    "message.delivered",
    "llm.request",
    "llm.token",
    "llm.response",
    "llm.error",
    "tool.call",
    "tool.result",
    "tool.error",
    "tool.progress",
    "task.created",
    "task.status",
    "blackboard.put",
    "blackboard.expired",
    "agent.state",
    "agent.spawned",
    "agent.error",
    "context.compacted",
    "guardrail.denied",
    "approval.requested",
    "approval.decided",
    "budget.exceeded",
]

EPHEMERAL_TYPES: Final = frozenset({"llm.token"})
"""Streamed to live subscribers but not written to the lake (one row per token is noise)."""


class Event(BaseModel):
    """One row of the event lake."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = EVENT_SCHEMA_VERSION
    """Version of this schema the row was written with."""
    event_id: str = Field(default_factory=unique_hex)
    """Unique id of the event."""
    ts: datetime = Field(default_factory=lambda: datetime.now(UTC))
    """When it happened (UTC, microseconds)."""
    run_id: str
    """The session run or eval sweep it belongs to (lake partition)."""
    session_id: str
    """The session it belongs to."""
    task_id: str | None = None
    """The task being worked on, if any."""
    agent: str | None = None
    """The logical actor that emitted it (``lead``, ``blackboard``, ``session``)."""
    type: EventType
    """Dotted event type."""
    seq: int = 0
    """Per-producer sequence number (orders events of one agent)."""
    parent_event_id: str | None = None
    """The event that caused this one (an ``llm.response`` for its ``tool.call``)."""
    duration_ms: float | None = None
    """How long the action took, where it has a duration."""
    model: str | None = None
    """Model name for LLM events."""
    tool: str | None = None
    """Tool name for tool events."""
    tokens_in: int | None = None
    """Prompt tokens of an LLM call."""
    tokens_out: int | None = None
    """Completion tokens of an LLM call."""
    status: str | None = None
    """Outcome: ``ok``, ``error``, a task or session status."""
    payload: str = "{}"
    """Everything else, as JSON text (secrets redacted)."""

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)

    @property
    def ephemeral(self) -> bool:
        return self.type in EPHEMERAL_TYPES


def make_event(type: EventType, *, run_id: str, session_id: str, payload: Any = None, **fields: Any) -> Event:
    """Build an event, redacting secrets from its payload."""
    if payload is None:
        text = "{}"
    else:
        text = json.dumps(payload, default=str, ensure_ascii=False)
        if may_hold_secret(text):
            text = json.dumps(redact(payload), default=str, ensure_ascii=False)
    return Event(type=type, run_id=run_id, session_id=session_id, payload=text, **fields)


class EventSink(Protocol):
    """Where producers hand events; implementations batch and forward them."""

    def emit(self, event: Event) -> None: ...


class Emitter(Protocol):
    """How a plain-Python core emits: the host fills in run, session, agent and sequence."""

    def __call__(self, type: EventType, /, *, payload: Any = None, **fields: Any) -> None: ...


def null_emitter(type: EventType, /, *, payload: Any = None, **fields: Any) -> None:
    """An emitter that drops everything (cores constructed without a host)."""


class ListSink:
    """Collects events in memory (unit tests, notebooks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


_ARROW_TYPES: Final = (
    ("schema_version", "int16"),
    ("event_id", "string"),
    ("ts", "timestamp_us_utc"),
    ("run_id", "string"),
    ("session_id", "string"),
    ("task_id", "string"),
    ("agent", "string"),
    ("type", "string"),
    ("seq", "int64"),
    ("parent_event_id", "string"),
    ("duration_ms", "float64"),
    ("model", "string"),
    ("tool", "string"),
    ("tokens_in", "int64"),
    ("tokens_out", "int64"),
    ("status", "string"),
    ("payload", "string"),
)

EVENT_COLUMNS: Final = tuple(name for name, _ in _ARROW_TYPES)


def _arrow_schema() -> Any:
    """Parquet columns of the lake (``date`` and ``run_id`` are also hive partition keys).

    Built on first use: processes that only emit events (every host actor) need not load pyarrow.
    """
    import pyarrow as pa
    
    make = {"int16": pa.int16, "int64": pa.int64, "float64": pa.float64, "string": pa.string,
            "timestamp_us_utc": lambda: pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, make[kind]()) for name, kind in _ARROW_TYPES])


def __getattr__(name: str) -> Any:
    if name == "ARROW_SCHEMA":
        schema = _arrow_schema()
        globals()["ARROW_SCHEMA"] = schema
        return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")





def events_to_columns(events: list[Event]) -> dict[str, list[Any]]:
    """Column-major form of a batch: cheap to ship across Ray and to turn into Arrow."""
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for ev in events:
        d = ev.__dict__
        for name in EVENT_COLUMNS:
            cols[name].append(d[name])
    return cols


__all__ = [
    "ARROW_SCHEMA",
    "EPHEMERAL_TYPES",
    "EVENT_COLUMNS",
    "EVENT_SCHEMA_VERSION",
    "Event",
    "EventSink",
    "Emitter",
    "null_emitter",
    "EventType",
    "ListSink",
    "events_to_columns",
    "make_event",
]
