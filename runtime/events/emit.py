"""How events are made and handed on: :func:`make_event`, the :class:`Emitter` cores call, sinks.

A core emits a payload model and the envelope columns it knows::

    emit(ToolCallPayload(id=call.id, arguments=args), tool=call.name, parent_event_id=parent)

and its host fills in run, session, agent and sequence (:meth:`HostCore.emitter`). An emitter takes
payload models only, so every event has a documented payload; an event type without a model cannot
be emitted (its model would not exist, and :class:`Event` rejects a type it does not know).

Payload models validate their fields when constructed: a wrong key or type is an error at the emit
site, in tests as in production. That costs about 2 µs per event, and the row's JSON is then written
by pydantic's serializer, which saves more than that (:meth:`Payload.dump_text`): emitting a typed
event is cheaper than emitting a dict was. Rows so written are compact JSON (``{"id":"c1"}``); older
rows have ``json.dumps``'s spaces. Read payloads as JSON (``event.data``, ``json_extract``), never as text.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from troupe.runtime.events.envelope import Event
from troupe.runtime.events.kinds import EventType
from troupe.runtime.events.payload import Payload
from troupe.runtime.redact import may_hold_secret, redact


def payload_text(data: Any) -> str:
    """A payload dict as the JSON text of its row, secrets redacted."""
    if data is None:
        return "{}"
    text = json.dumps(data, default=str, ensure_ascii=False)
    if may_hold_secret(text):
        text = json.dumps(redact(data), default=str, ensure_ascii=False)
    return text


def make_event(what: Payload | EventType, *, run_id: str, session_id: str, payload: Any = None, **fields: Any) -> Event:
    """Build an event from a payload model (``make_event(ToolCallPayload(...), run_id=..., ...)``).

    The untyped form ``make_event("tool.call", payload={...})`` takes a raw dict (rows made by
    tests and benchmarks, replays of old rows); the type must still be a known one.
    """
    if isinstance(what, Payload):
        if payload is not None:
            raise TypeError("make_event takes a payload model or a type and a payload dict, not both")
        text = what.dump_text()
        if may_hold_secret(text):
            text = json.dumps(redact(what.dump()), default=str, ensure_ascii=False, separators=(",", ":"))
        return Event(type=what.event_type, run_id=run_id, session_id=session_id, payload=text, **fields)
    return Event(type=what, run_id=run_id, session_id=session_id, payload=payload_text(payload), **fields)


class EventSink(Protocol):
    """Where producers hand events; implementations batch and forward them."""

    def emit(self, event: Event) -> None: ...


class Emitter(Protocol):
    """How a plain-Python core emits: a payload model and envelope columns (``tool=``, ``status=``,
    ``duration_ms=``, ...); the host fills in run, session, agent and sequence."""

    def __call__(self, payload: Payload, /, **fields: Any) -> None: ...


def null_emitter(payload: Payload, /, **fields: Any) -> None:
    """An emitter that drops everything (cores constructed without a host)."""


class ListSink:
    """Collects events in memory (unit tests, notebooks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


__all__ = ["Emitter", "EventSink", "ListSink", "make_event", "null_emitter", "payload_text"]
