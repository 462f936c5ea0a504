"""Server-sent events of one session, with positions that survive reconnects.

An event's position (the SSE ``id``) is its index, from 1, in the session's *canonical order*:
``(ts, seq, event_id)`` over its lasting events, the order of the lake (``compact_run`` sorts by
``ts, seq``). A finished session is streamed from the lake in that order; a live one from the
event log's tail, where events of several actors arrive in batches and so not quite in that order:
each event waits ``settle_s`` after it arrived before it is given a position, and the events
waiting are released in canonical order (tokens, which never reach the lake, pass at once and
carry no id). An event arriving more than ``settle_s`` after a later one was already released is
still sent (never lost), at the next position: ``SessionStream.late`` counts them (see docs/server.md).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from troupe.runtime.events import Event

Key = tuple[datetime, int, str]
PING = ": ping\n\n"


def order_key(event: Event) -> Key:
    return (event.ts, event.seq, event.event_id)


def frame(position: int | None, event: Event) -> str:
    head = f"id: {position}\n" if position is not None else ""
    return f"{head}event: {event.type}\ndata: {event.model_dump_json()}\n\n"


def end_frame(status: str | None) -> str:
    return f"event: end\ndata: {json.dumps({'status': status})}\n\n"


class SessionStream:
    """The stream of a session this process holds: fed by its tail, read by any number of clients."""

    def __init__(self, *, settle_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.clock = clock
        self.released: list[Event] = []
        self._pending: list[tuple[Key, float, int, Event]] = []
        self._tie = itertools.count()
        self._readers: set[asyncio.Queue[Event | None]] = set()
        self.done = False
        self.status: str | None = None
        self.late = 0
        """Events that came after a later one had its position (sent at the next position)."""

    def add(self, event: Event) -> None:
        if event.ephemeral:
            for q in self._readers:
                q.put_nowait(event)
            return
        heapq.heappush(self._pending, (order_key(event), self.clock(), next(self._tie), event))

    def release(self, *, everything: bool = False) -> int:
        """Give positions to the events that waited ``settle_s`` (all of them with ``everything``)."""
        cut = self.clock() - self.settle_s
        n = 0
        while self._pending and (everything or self._settled(cut)):
            key, _, _, event = heapq.heappop(self._pending)
            if self.released and key < order_key(self.released[-1]):
                self.late += 1
            self.released.append(event)
            n += 1
        if n:
            self._wake()
        return n

    def _settled(self, cut: float) -> bool:
        """Some waiting event has waited long enough: it is released, with every event ordered before it."""
        return any(arrived <= cut for _, arrived, _, _ in self._pending)

    def catch_up(self, recorded: list[Event]) -> int:
        """Append the recorded events (the lake's, in canonical order) this stream has not had: those
        a session's actors logged after its ``session.finished``. Returns how many."""
        have = {e.event_id for e in self.released}
        missing = [e for e in recorded if e.event_id not in have]
        self.released += missing
        if missing:
            self._wake()
        return len(missing)

    def finish(self, status: str | None) -> None:
        """Every event is in: release the rest and end the readers' streams once they have it all."""
        self.release(everything=True)
        self.done, self.status = True, status
        self._wake()

    def _wake(self) -> None:
        for q in self._readers:
            q.put_nowait(None)

    async def frames(self, after: int, *, heartbeat_s: float = 15.0) -> AsyncIterator[str]:
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        self._readers.add(q)
        pos = max(0, after)
        try:
            while True:
                while pos < len(self.released):
                    pos += 1
                    yield frame(pos, self.released[pos - 1])
                if self.done:
                    yield end_frame(self.status)
                    return
                try:
                    item = await asyncio.wait_for(q.get(), heartbeat_s)
                except TimeoutError:
                    yield PING
                    continue
                if item is not None:
                    yield frame(None, item)
        finally:
            self._readers.discard(q)


async def pump(stream: SessionStream, events: AsyncIterator[Event], *, tick_s: float = 0.1) -> str | None:
    """Feed ``stream`` from a session's tail up to ``session.finished`` (released with everything
    before it); returns the session's status. The caller finishes the stream once the session is
    closed (:meth:`SessionStream.catch_up` adds what reached the lake after it)."""

    async def ticker() -> None:
        while True:
            await asyncio.sleep(tick_s)
            stream.release()

    tick = asyncio.create_task(ticker())
    status: str | None = None
    try:
        async for event in events:
            stream.add(event)
            if event.type == "session.finished":
                status = event.status
                break
    finally:
        tick.cancel()
        stream.release(everything=True)
    return status


async def lake_frames(
    load: Callable[[], Awaitable[list[Event]]], finished: Callable[[], Awaitable[str | None]], after: int, *,
    settle_s: float = 2.0, poll_s: float = 1.0, heartbeat_s: float = 15.0,
) -> AsyncIterator[str]:
    """The stream of a session this process does not hold, read from the lake (sorted canonically by
    ``load``). While ``finished()`` says nothing (it is live in another process), only events older
    than ``settle_s`` by their own clock are given positions; polled every ``poll_s``."""
    pos = max(0, after)
    quiet = 0.0
    while True:
        status = await finished()
        events = await load()
        if status is None:
            edge = datetime.now(UTC) - timedelta(seconds=settle_s)
            ready = [e for e in events if e.ts <= edge]
        else:
            ready = events
        sent = False
        while pos < len(ready):
            pos += 1
            sent = True
            yield frame(pos, ready[pos - 1])
        if status is not None:
            yield end_frame(status)
            return
        quiet = 0.0 if sent else quiet + poll_s
        if quiet >= heartbeat_s:
            quiet = 0.0
            yield PING
        await asyncio.sleep(poll_s)


def parse_last_event_id(header: str | None, after: int | None) -> int:
    for raw in (header, after):
        if raw is None:
            continue
        try:
            return max(0, int(str(raw).strip()))
        except ValueError:
            continue
    return 0


__all__ = ["PING", "SessionStream", "end_frame", "frame", "lake_frames", "order_key",
           "parse_last_event_id", "pump"]
