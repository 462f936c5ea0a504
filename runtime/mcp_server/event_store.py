"""Resumable SSE for ``troupe mcp serve --http``: the events of each stream, kept in memory.

With an event store the SDK's streamable-HTTP transport opens every SSE stream with a priming
event (an id, empty data and a ``retry`` field, for clients that negotiated 2025-11-25 or later),
gives every message an id, and answers a GET with ``Last-Event-ID`` by replaying what came after
that id on the same stream, then goes on live. A tool may close its stream mid-call (the client
reconnects after ``retry`` ms) and its result still arrives.

Bounded: the newest :data:`MAX_EVENTS` events are kept (a client that reconnects after older
ones were dropped gets what is left); nothing goes to disk (a restarted server has no streams).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage

MAX_EVENTS = 10_000
RETRY_MS = 1000
"""The ``retry`` field of priming events: how long a client waits before it reconnects."""


@dataclass(frozen=True)
class _Stored:
    stream_id: StreamId
    message: JSONRPCMessage | None


class MemoryEventStore(EventStore):
    """Events by id (``<n>``, increasing), the oldest dropped past ``max_events``."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._events: OrderedDict[str, _Stored] = OrderedDict()
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        # The SDK's transport asks `if self._event_store:` before it sends a priming event; without this an empty
        # store (every new server) is falsy, and no stream ever got a priming event, an id or a `retry` field.
        return True

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events[event_id] = _Stored(stream_id, message)
        while len(self._events) > self.max_events:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the messages of ``last_event_id``'s stream stored after it; ``None`` for an unknown id."""
        seen = self._events.get(last_event_id)
        if seen is None:
            return None
        after = False
        for event_id, stored in list(self._events.items()):
            if event_id == last_event_id:
                after = True
                continue
            if after and stored.stream_id == seen.stream_id and stored.message is not None:
                await send_callback(EventMessage(stored.message, event_id))
        return seen.stream_id


__all__ = ["MAX_EVENTS", "RETRY_MS", "MemoryEventStore"]
