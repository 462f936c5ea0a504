"""Server-sent events of one session, with positions that survive reconnects.

An event's SSE ``id`` is its *stream position*: the number the event log gave it as it accepted it
(the ``position`` column, 1, 2, 3 ... per session; :mod:`troupe.runtime.eventlog.positions`), the
same live, in the lake, and in every replica. So a client that reconnects with ``Last-Event-ID: n``
anywhere, to this process or another, live or after the session ended, gets exactly the events
after ``n``. Live events are sent as they come; an event whose position is past a gap (an earlier
one still on its way) is held until the gap fills, at most ``gap_s``: then the stream reads the
missing positions from the lake, and gives up on those still missing (``SessionStream.skipped``).
Tokens (``llm.token``), which have no position and never reach the lake, pass at once with no id.
Rows written before positions existed (null ``position``, old lakes) come first, numbered 1..k in
the order ``(ts, seq, event_id)`` (:func:`numbered`).

No wait is unbounded: a live stream's pump asks whether the session is still there when its tail
has been quiet for ``quiet_s``, and ends the stream when it is not; a stream read from the lake gives
up after ``LAKE_FAILURES`` failed reads in a row, or when a session said to run elsewhere sent
nothing for ``stale_s``. Such a stream ends with an ``end`` frame that carries an ``error`` (and the
status known), so a client stops, or reconnects with ``Last-Event-ID`` to try again.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from troupe.runtime.events import Event

Numbered = tuple[int, Event]
PING = ": ping\n\n"
LAKE_FAILURES = 3
"""Failed lake reads in a row after which a stream read from the lake ends with an error."""
GAP_S = 2.0
"""How long a stream holds events back while an earlier position is missing (then it reads the lake)."""


def stream_key(event: Event) -> tuple[bool, int, object, int, str]:
    """The stream order of recorded events: rows without a position (old lakes) first, in
    ``(ts, seq, event_id)`` order, then by position."""
    return (event.position is not None, event.position or 0, event.ts, event.seq, event.event_id)


def numbered(events: Iterable[Event]) -> list[Numbered]:
    """Recorded events in stream order (:func:`stream_key`, as the lake gives them) with their ids:
    the position, or for rows without one their place 1..k among those."""
    out: list[Numbered] = []
    k = 0
    for event in sorted(events, key=stream_key):
        if event.position is None:
            k += 1
            out.append((k, event))
        else:
            out.append((event.position, event))
    return out


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

    def __init__(self, *, gap_s: float = GAP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap_s = gap_s
        self.clock = clock
        self.released: list[Event] = []
        """The events sent (or ready to be), in stream order; ``ids[i]`` is the id of ``released[i]``."""
        self.ids: list[int] = []
        self._waiting: dict[int, Event] = {}
        """Events past a gap, by position."""
        self._gap_since: float | None = None
        self.added = asyncio.Event()
        """Set when an event waits past a gap (the pump's gap timer waits on it)."""
        self.error: str | None = None
        """Why the stream ended without its session's end (sent in the ``end`` frame)."""
        self._readers: set[asyncio.Queue[Event | None]] = set()
        self.done = False
        self.status: str | None = None
        self.skipped = 0
        """Positions given up on: missing ``gap_s`` after a later one came, and not in the lake either."""
        self.late = 0
        """Events that came after their position was passed (given up on, or sent already): not sent again."""

    @property
    def last(self) -> int:
        """The id of the last event released (0: none)."""
        return self.ids[-1] if self.ids else 0

    def add(self, event: Event) -> None:
        if event.ephemeral:
            for q in self._readers:
                q.put_nowait(event)
            return
        # An event the log did not number (an older event log): the next place.
        self._put(event.position if event.position is not None else max(self._waiting, default=self.last) + 1, event)
        self._drain()

    def _put(self, position: int, event: Event) -> None:
        if position <= self.last:
            i = bisect.bisect_left(self.ids, position)
            if i == len(self.ids) or self.ids[i] != position or self.released[i].event_id != event.event_id:
                self.late += 1
            return
        self._waiting.setdefault(position, event)

    def _drain(self) -> int:
        n = 0
        while (event := self._waiting.pop(self.last + 1, None)) is not None:
            self.ids.append(self.last + 1)
            self.released.append(event)
            n += 1
        if not self._waiting:
            self._gap_since = None
        elif self._gap_since is None or n:
            self._gap_since = self.clock()
            self.added.set()
        if n:
            self._wake()
        return n

    def gap_due_in(self) -> float | None:
        """Seconds until a gap is due to be filled from the lake (``None``: no gap)."""
        if self._gap_since is None:
            return None
        return max(0.0, self._gap_since + self.gap_s - self.clock())

    def skip_gap(self) -> int:
        """Give up on every missing position: release what waits, in order. Returns positions skipped."""
        if not self._waiting:
            return 0
        skipped = 0
        for position in sorted(self._waiting):
            skipped += position - self.last - 1
            self.ids.append(position)
            self.released.append(self._waiting.pop(position))
        self.skipped += skipped
        self._gap_since = None
        self._wake()
        return skipped

    def catch_up(self, recorded: list[Numbered]) -> int:
        """Add recorded events (:func:`numbered`, from the lake) this stream has not had: earlier
        ones before a resumed run's, missing positions of a gap, those logged after the session's
        ``session.finished``. Returns how many were released."""
        for position, event in recorded:
            if position > self.last:
                self._waiting.setdefault(position, event)
        return self._drain()

    def finish(self, status: str | None, error: str | None = None) -> None:
        """Every event is in (or, with ``error``, no more will come): release the rest (past any gap
        left) and end the readers' streams once they have it all."""
        if self.done:
            return
        self.skip_gap()
        self.done, self.status, self.error = True, status, error
        self._wake()

    def _wake(self) -> None:
        for q in self._readers:
            q.put_nowait(None)

    async def frames(self, after: int, *, heartbeat_s: float = 15.0) -> AsyncIterator[str]:
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        self._readers.add(q)
        i = bisect.bisect_right(self.ids, max(0, after))
        try:
            while True:
                while i < len(self.released):
                    yield frame(self.ids[i], self.released[i])
                    i += 1
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
               alive: Callable[[], Awaitable[str | None]] | None = None, quiet_s: float = 30.0,
               fill: Callable[[], Awaitable[list[Numbered]]] | None = None) -> str | None:
    """Feed ``stream`` from a session's tail up to ``session.finished``; returns the session's
    status. The caller finishes the stream once the session is closed (:meth:`SessionStream.catch_up`
    adds what reached the lake after it).

    Events are released as they come, in position order. When a position has been missing for
    ``gap_s`` (a timer waits for it), ``fill()`` reads the session's recorded events (from the lake)
    into the stream, and what is still missing is skipped. When the tail has been quiet for
    ``quiet_s``, ``alive()`` is asked: it returns ``None`` while the session runs, or the status it
    ended with; it raises (:class:`SessionGoneError`, or whatever reaching it raised) when the session
    is gone. Either way the pump stops: no stream waits on a session that is not there."""
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
            due = stream.gap_due_in()
            if due is None or due > 0:
                try:
                    await asyncio.wait_for(stream.added.wait(), due)
                except TimeoutError:
                    pass
                stream.added.clear()
                continue
            if fill is not None:
                try:
                    stream.catch_up(await fill())
                except Exception:  # the lake could not be read: what is missing is skipped
                    pass
            if stream.gap_due_in() == 0:
                stream.skip_gap()

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
    return status


async def lake_frames(
    load: Callable[[], Awaitable[list[Event]]], finished: Callable[[], Awaitable[str | None]], after: int, *,
    gap_s: float = GAP_S, poll_s: float = 1.0, heartbeat_s: float = 15.0, stale_s: float = 600.0,
) -> AsyncIterator[str]:
    """The stream of a session this process does not hold, read from the lake (polled every
    ``poll_s``), each event with its position (:func:`numbered`). While ``finished()`` says nothing
    (the session is live in another process) events are sent up to the first missing position; a
    gap still there after ``gap_s`` is skipped. Ends with an error in its ``end`` frame after
    ``LAKE_FAILURES`` failed reads in a row, or when a session said to be live sent nothing for
    ``stale_s`` (the client may reconnect with ``Last-Event-ID``)."""
    pos = max(0, after)
    quiet = idle = 0.0
    gap_since: float | None = None
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
        ahead = [(p, e) for p, e in numbered(events) if p > pos]
        sent = False
        for p, event in ahead:
            if p != pos + 1 and status is None:  # a position still on its way to the lake
                now = time.monotonic()
                gap_since = now if gap_since is None else gap_since
                if now - gap_since < gap_s:
                    break
            gap_since = None
            pos, sent = p, True
            yield frame(p, event)
        else:
            gap_since = None
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


__all__ = ["GAP_S", "LAKE_FAILURES", "PING", "Numbered", "SessionGoneError", "SessionStream", "end_frame", "frame",
           "lake_frames", "numbered", "parse_last_event_id", "pump", "stream_key"]
