"""The event envelope: one typed row per action, the contract between producers and the lake.

The envelope's columns are typed; what else an event carries is its ``payload``, JSON text whose
keys the event type's payload model documents (:mod:`troupe.runtime.events.registry`). Changing a
column means bumping :data:`EVENT_SCHEMA_VERSION`; changing a payload's fields means bumping that
model's ``version``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from troupe.runtime.events.arrow import ArrowType
from troupe.runtime.events.kinds import EPHEMERAL_TYPES, EventType
from troupe.runtime.events.payload import Payload
from troupe.runtime.events.registry import parse_payload
from troupe.runtime.ids import unique_hex

EVENT_SCHEMA_VERSION: Final = 3
"""2: the ``turn`` column; 3: the ``position`` column. Lakes written before a column read its value as
null (the view unions files by name)."""


class Event(BaseModel):
    """One row of the event lake (its columns, in order, are :data:`~troupe.runtime.events.schema.EVENT_COLUMNS`)."""

    model_config = ConfigDict(frozen=True)

    schema_version: Annotated[int, ArrowType("int16")] = EVENT_SCHEMA_VERSION
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
    turn: int | None = None
    """The session's user turn the event belongs to (1, 2, ... in a conversation; 1 in a one-shot
    session); null for events tied to no turn (before the first message, environment setup)."""
    agent: str | None = None
    """The logical actor that emitted it (``lead``, ``blackboard``, ``session``)."""
    type: EventType
    """Dotted event type; its payload model says what ``payload`` holds."""
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
    """Everything else, as JSON text (secrets redacted); its keys are the type's payload model's fields."""
    position: int | None = None
    """The event's place (1, 2, 3 ...) in its session's order, given by the event log as it accepts
    the event (producers leave it null); a session's stream positions (the SSE ``id``). Null for
    ephemeral events and for rows written before schema version 3."""

    @property
    def data(self) -> dict[str, Any]:
        """The payload as a dict."""
        return json.loads(self.payload)

    @property
    def typed(self) -> Payload:
        """The payload as its type's model (see :func:`~troupe.runtime.events.registry.parse_payload`)."""
        return parse_payload(self.type, self.payload)

    @property
    def ephemeral(self) -> bool:
        return self.type in EPHEMERAL_TYPES


__all__ = ["EVENT_SCHEMA_VERSION", "Event"]
