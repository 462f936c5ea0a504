"""Live tails: the recent events of watched sessions, for viewers that long-poll (``troupe run
--stream``, a dashboard). Ephemeral events such as ``llm.token`` reach only these, never the disk.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from troupe.runtime.clock import Clock
from troupe.runtime.errors import TroupeError
from troupe.runtime.eventlog.columns import row


class NotSubscribedError(TroupeError):
    """``read`` on a session nobody subscribed to (or whose idle tail was dropped): subscribe again."""


@dataclass(eq=False)
class _Tail:
    """One session's live events: ``events[0]`` has cursor ``start``."""

    events: deque[dict[str, Any]]
    start: int = 0
    refs: int = 1
    last_read: float = 0.0
    waker: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) whenever events arrive; readers wait on the one they saw."""

    @property
    def end(self) -> int:
        return self.start + len(self.events)


class LiveTails:
    """Per-session tails of at most ``tail_max`` events; one nobody read for ``tail_idle_s`` is dropped."""

    def __init__(self, *, tail_max: int, tail_idle_s: float, clock: Clock) -> None:
        self.tail_max = tail_max
        self.tail_idle_s = tail_idle_s
        self._clock = clock
        self._tails: dict[str, _Tail] = {}

    def __len__(self) -> int:
        return len(self._tails)

    def __bool__(self) -> bool:
        return bool(self._tails)

    def deliver(self, columns: Mapping[str, Sequence[Any]], n: int) -> None:
        """Append the rows of watched sessions of a batch of ``n`` rows, and wake their readers."""
        sessions = columns["session_id"]
        touched: set[_Tail] = set()
        for i in range(n):
            tail = self._tails.get(sessions[i])
            if tail is None:
                continue
            if len(tail.events) == tail.events.maxlen:
                tail.start += 1
            tail.events.append(row(columns, i))
            touched.add(tail)
        for tail in touched:
            tail.waker.set()
            tail.waker = asyncio.Event()

    def drop_idle(self) -> None:
        """Forget tails nobody has read for ``tail_idle_s`` (a viewer that died without unsubscribing)."""
        now = self._clock.monotonic()
        for sid in [s for s, t in self._tails.items() if now - t.last_read > self.tail_idle_s]:
            del self._tails[sid]

    def subscribe(self, session_id: str) -> int:
        """Start keeping a live tail for a session; returns the cursor to read from.

        Subscriptions are counted: each ``subscribe`` needs its own ``unsubscribe``.
        """
        tail = self._tails.get(session_id)
        if tail is None:
            tail = self._tails[session_id] = _Tail(events=deque(maxlen=self.tail_max))
        else:
            tail.refs += 1
        tail.last_read = self._clock.monotonic()
        return tail.end

    def unsubscribe(self, session_id: str) -> None:
        tail = self._tails.get(session_id)
        if tail is not None:
            tail.refs -= 1
            if tail.refs <= 0:
                del self._tails[session_id]

    async def read(self, session_id: str, cursor: int, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """Events of a session after ``cursor``, waiting up to ``timeout`` seconds for some.

        Returns ``(events, next_cursor)``; ``([], cursor)`` on timeout. If the tail overflowed
        past ``cursor``, reading resumes at the oldest event still held.
        """
        tail = self._tails.get(session_id)
        if tail is None:
            raise NotSubscribedError(f"session {session_id!r} is not subscribed", session_id=session_id)
        tail.last_read = self._clock.monotonic()
        cursor = min(max(cursor, tail.start), tail.end)  # overflowed, or stale from an older log
        if tail.end <= cursor and timeout > 0:
            try:
                await asyncio.wait_for(tail.waker.wait(), timeout)
            except TimeoutError:
                pass
        tail.last_read = self._clock.monotonic()
        cursor = max(cursor, tail.start)
        if tail.end <= cursor:
            return [], cursor
        return list(itertools.islice(tail.events, cursor - tail.start, None)), tail.end


__all__ = ["LiveTails", "NotSubscribedError"]
