"""Server-sent events of one session, with positions that survive reconnects.

An event's position (the SSE ``id``) is its index, from 1, in the session's *canonical order*:
``(ts, seq, event_id)`` over its lasting events, the order of the lake (``compact_run`` sorts by
``ts, seq``). A finished session is streamed from the lake in that order; a live one from the
event log's tail, where events of several actors arrive in batches and so not quite in that order:
an event is given a position once it is ``settle_s`` old by its own clock (``ts``; the time it took
to reach the log counts) or has waited ``settle_s`` here, whichever comes first, and the events
waiting are released in canonical order (tokens, which never reach the lake, pass at once and
carry no id). An event arriving more than ``settle_s`` after a later one was already released is
still sent (never lost), at the next position: ``SessionStream.late`` counts them (see docs/server.md).

No wait is unbounded: a live stream's pump asks whether the session is still there when its tail
has been quiet for ``quiet_s``, and ends the stream when it is not; a stream read from the lake gives
up after ``LAKE_FAILURES`` failed reads in a row, or when a session said to run elsewhere sent
nothing for ``stale_s``. Such a stream ends with an ``end`` frame that carries an ``error`` (and the
status known), so a client stops, or reconnects with ``Last-Event-ID`` to try again.
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
LAKE_FAILURES = 3
"""Failed lake reads in a row after which a stream read from the lake ends with an error."""


def order_key(event: Event) -> Key:
    return (event.ts, event.seq, event.event_id)


def frame(position: int | None, event: Event) -> str:
    head = f"id: {position}\n" if position is not None else ""
    return f"{head}event: {event.type}\ndata: {event.model_dump_json()}\n\n"


def end_frame(status: str | None, error: str | None = None) -> str:
    """The last frame: ``{"status": ...}``, with ``"error"`` when the stream ended without the session's end."""
    data: dict[str, str | None] = {"status": status}
    if error is not None:
        data["error"] = error
    return f"event: end\ndata: {json.dumps(data)}\n\n"


class SessionStream:
    """The stream of a session this process holds: fed by its tail, read by any number of clients."""

    def __init__(self, *, settle_s: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settle_s = settle_s
        self.clock = clock
        self.wall = wall
        self.released: list[Event] = []
        self._pending: list[tuple[Key, float, int, Event]] = []
        """(canonical key, when it may be released on :attr:`clock`, tie, event), a heap."""
        self.added = asyncio.Event()
        """Set when an event arrives (the pump's release timer waits on it)."""
        self.error: str | None = None
        """Why the stream ended without its session's end (sent in the ``end`` frame)."""
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
        age = max(0.0, (self.wall() - event.ts).total_seconds())  # on its way to the log already
        due = self.clock() + max(0.0, self.settle_s - age)
        heapq.heappush(self._pending, (order_key(event), due, next(self._tie), event))
        self.added.set()

    def due_in(self) -> float | None:
        """Seconds until the next waiting event may be released (``None``: none waits)."""
        if not self._pending:
            return None
        return max(0.0, min(due for _, due, _, _ in self._pending) - self.clock())

    def release(self, *, everything: bool = False) -> int:
        """Give positions to the events that are ``settle_s`` old (all of them with ``everything``)."""
        cut = self.clock()
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
        """Some waiting event is old enough: it is released, with every event ordered before it."""
        return any(due <= cut for _, due, _, _ in self._pending)

    def catch_up(self, recorded: list[Event]) -> int:
        """Append the recorded events (the lake's, in canonical order) this stream has not had: those
        a session's actors logged after its ``session.finished``. Returns how many."""
        have = {e.event_id for e in self.released}
        missing = [e for e in recorded if e.event_id not in have]
        self.released += missing
        if missing:
            self._wake()
        return len(missing)

    def finish(self, status: str | None, error: str | None = None) -> None:
        """Every event is in (or, with ``error``, no more will come): release the rest and end the
        readers' streams once they have it all."""
        if self.done:
            return
        self.release(everything=True)
        self.done, self.status, self.error = True, status, error
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
                    yield end_frame(self.status, self.error)
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


class SessionGoneError(RuntimeError):
    """The session a stream follows is not there any more (its process died, or it ended unseen)."""


async def pump(stream: SessionStream, events: AsyncIterator[Event], *,
               alive: Callable[[], Awaitable[str | None]] | None = None, quiet_s: float = 30.0) -> str | None:
    """Feed ``stream`` from a session's tail up to ``session.finished`` (released with everything
    before it); returns the session's status. The caller finishes the stream once the session is
    closed (:meth:`SessionStream.catch_up` adds what reached the lake after it).

    Each event is released once old enough (a timer waits for the next one due). When the tail has
    been quiet for ``quiet_s``, ``alive()`` is asked: it returns ``None`` while the session runs, or
    the status it ended with; it raises (:class:`SessionGoneError`, or whatever reaching it raised)
    when the session is gone. Either way the pump stops: no stream waits on a session that is not there."""
    feed: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async for event in events:
                feed.put_nowait(event)
            feed.put_nowait(None)
        except Exception as e:
            feed.put_nowait(e)

    async def timer() -> None:
        while True:
            due = stream.due_in()
            if due is None or due > 0:
                try:
                    await asyncio.wait_for(stream.added.wait(), due)
                except TimeoutError:
                    pass
            stream.added.clear()
            stream.release()

    reader, tick = asyncio.create_task(read()), asyncio.create_task(timer())
    status: str | None = None
    try:
        while True:
            try:
                item = await asyncio.wait_for(feed.get(), quiet_s)
            except TimeoutError:
                if alive is None:
                    continue
                status = await asyncio.wait_for(alive(), quiet_s)
                if status is None:
                    continue
                break
            if item is None:
                raise SessionGoneError("the session's event tail ended before its session.finished")
            if isinstance(item, BaseException):
                raise item
            stream.add(item)
            if item.type == "session.finished":
                status = item.status
                break
    finally:
        reader.cancel()
        tick.cancel()
        stream.release(everything=True)
    return status


async def lake_frames(
    load: Callable[[], Awaitable[list[Event]]], finished: Callable[[], Awaitable[str | None]], after: int, *,
    settle_s: float = 2.0, poll_s: float = 1.0, heartbeat_s: float = 15.0, stale_s: float = 600.0,
) -> AsyncIterator[str]:
    """The stream of a session this process does not hold, read from the lake (sorted canonically by
    ``load``). While ``finished()`` says nothing (it is live in another process), only events older
    than ``settle_s`` by their own clock are given positions; polled every ``poll_s``. Ends with an
    error in its ``end`` frame after ``LAKE_FAILURES`` failed reads in a row, or when a session said
    to be live sent nothing for ``stale_s`` (the client may reconnect with ``Last-Event-ID``)."""
    pos = max(0, after)
    quiet = idle = 0.0
    failures = 0
    while True:
        try:
            status = await finished()
            events = await load()
        except Exception as e:
            failures += 1
            if failures >= LAKE_FAILURES:
                yield end_frame(None, f"the session's events could not be read ({failures} tries): {e}")
                return
            await asyncio.sleep(poll_s)
            continue
        failures = 0
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
        idle = 0.0 if sent else idle + poll_s
        if idle >= stale_s:
            yield end_frame("running", f"no event from the session for {stale_s:.0f} s (it runs in another "
                                       "process, or that process is gone); reconnect to go on watching")
            return
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


__all__ = ["LAKE_FAILURES", "PING", "SessionGoneError", "SessionStream", "end_frame", "frame", "lake_frames", "order_key",
           "parse_last_event_id", "pump"]
