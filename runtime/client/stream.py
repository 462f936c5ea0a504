"""A session's server-sent events, followed across dropped connections with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2

from troupe.runtime.events import Event

RECONNECTS = 5
"""Reconnections in a row without receiving an event before the stream gives up."""


class EventStream:
    """Iterate a session's events (``async for event in stream``) until the server's ``end`` frame.

    Events with an ``id`` advance :attr:`last_id`; a dropped connection is reopened with
    ``Last-Event-ID: last_id``, so nothing is lost or repeated. Tokens come without an id (they are
    not replayed). :attr:`end` is the ``end`` frame's data (``{"status": ...}``) once it came."""

    def __init__(self, open_stream: Callable[[int | None], Awaitable[httpx2.Response]], *, after: int | None = None,
                 reconnects: int = RECONNECTS, backoff_s: float = 0.5) -> None:
        self._open = open_stream
        self.last_id = after
        self.end: dict[str, Any] | None = None
        self.reconnects = reconnects
        self.backoff_s = backoff_s
        self.reconnected = 0

    async def __aiter__(self) -> AsyncIterator[Event]:
        failures = 0
        while self.end is None:
            try:
                response = await self._open(self.last_id)
                try:
                    async for sse in httpx2.EventSource(response):
                        if sse.event == "end":
                            self.end = json.loads(sse.data or "{}")
                            return
                        if not sse.data or sse.event == "message":
                            continue
                        event = Event.model_validate_json(sse.data)
                        if sse.id:
                            self.last_id = int(sse.id)
                        failures = 0
                        yield event
                finally:
                    await response.aclose()
            except (httpx2.TransportError, httpx2.RemoteProtocolError):
                pass
            failures += 1
            if failures > self.reconnects:
                raise ConnectionError(f"the event stream dropped {failures} times in a row "
                                      f"(last event id {self.last_id})")
            self.reconnected += 1
            await asyncio.sleep(self.backoff_s * failures)


__all__ = ["EventStream"]
