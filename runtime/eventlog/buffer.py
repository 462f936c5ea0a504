"""The producer-side batcher: ``emit`` is a list append; a background task ships batches.

One remote call per event would cap a producer at about a thousand events a second (the cost
of an actor call); batching by count (``max_batch``) or age (``max_delay_s``) makes the call
cost per batch instead. Batches are shipped one at a time and in order. A failed ship is
retried with backoff and the events stay buffered until it succeeds: nothing is dropped
silently. Only ``max_pending`` bounds memory when the log is unreachable for long; past it the
oldest events are dropped, counted in ``dropped`` and logged.

``emit`` never waits. A producer that can pause (an agent between two model calls) awaits
:meth:`EventBuffer.wait_for_room`, which returns at once unless ``high_water`` events are waiting,
so a slow log (which itself waits for a slow disk) slows producers before anything is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.errors import TroupeError
from troupe.runtime.events import EVENT_COLUMNS, Event

Ship = Callable[[dict[str, list[Any]]], Awaitable[Any]]
"""Sends one column-major batch to the event log (for example ``troupe.actors.eventlog_actor.RayShip``)."""

_log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH: Final = 1000
DEFAULT_MAX_DELAY_S: Final = 0.05
DEFAULT_MAX_PENDING: Final = 1_000_000
HIGH_WATER_BATCHES: Final = 10
"""Default ``high_water``: this many full batches waiting."""


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def _micros(ts: datetime) -> int:
    return ((ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)) - _EPOCH) // _US


def to_columns(events: list[Event]) -> dict[str, list[Any]]:
    """The wire form of a batch: :func:`troupe.runtime.events.events_to_columns`, except that ``ts``
    is integer microseconds since the Unix epoch (UTC).

    This runs for every event a producer emits, and datetime objects are the costliest part
    of a batch to pickle, unpickle and turn into Arrow (measured: the log's per-batch work
    halves). The event log accepts either form.
    """
    rows = [ev.__dict__ for ev in events]
    cols = {name: [row[name] for row in rows] for name in EVENT_COLUMNS}
    try:
        cols["ts"] = [(ts - _EPOCH) // _US for ts in cols["ts"]]
    except TypeError:  # a naive datetime somewhere: read it as UTC, as Arrow would
        cols["ts"] = [_micros(ts) for ts in cols["ts"]]
    return cols


class EventShipError(TroupeError):
    """``flush``/``close`` could not ship the buffered events; they are still buffered."""


class EventBuffer:
    """Batches events from one process and ships them with an async ``ship`` callable.

    Use from a single event loop: ``start()`` once, ``emit`` freely, ``await close()`` at the end.
    """

    def __init__(
        self,
        ship: Ship,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        high_water: int | None = None,
        attempts: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ship = ship
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_pending = max_pending
        self.high_water = min(HIGH_WATER_BATCHES * max_batch, max_pending) if high_water is None else high_water
        """Pending events at which :meth:`wait_for_room` waits (default: ten batches, at most ``max_pending``)."""
        if not 1 <= self.high_water <= max_pending:
            raise ValueError(f"high_water must be between 1 and max_pending ({max_pending}), got {self.high_water}")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._events: list[Event] = []
        self._wake = asyncio.Event()
        self._shipped = asyncio.Event()
        """Set (and replaced) after each acknowledged batch; :meth:`wait_for_room` waits on the one it saw."""
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[bool] | None = None
        """The ship under way (it outlives a cancelled caller: see :meth:`_ship_one`)."""
        self._closed = False
        self.shipped = 0
        """Events the log has acknowledged."""
        self.dropped = 0
        """Events dropped because more than ``max_pending`` were waiting (logged when it happens)."""
        self.failures = 0
        """Ship attempts that failed (each was retried)."""
        self.last_error: BaseException | None = None

    # --- producer side -------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Buffer one event (never blocks, never raises for a full or unreachable log)."""
        events = self._events
        events.append(event)
        if len(events) >= self.max_batch:
            self._wake.set()
            if len(events) > self.max_pending:
                excess = len(events) - self.max_pending
                del events[:excess]
                self.dropped += excess
                _log.error("event buffer over %d events: dropped the %d oldest", self.max_pending, excess)

    @property
    def pending(self) -> int:
        """Events buffered and not yet acknowledged."""
        return len(self._events)

    async def wait_for_room(self) -> None:
        """Return once fewer than ``high_water`` events are pending: at once when they are.

        With the background shipper running this waits for it (however long the log takes:
        that is the back-pressure); without it (not started, or closed) it ships from here and
        raises :class:`EventShipError` if the log refuses after all attempts.
        """
        while len(self._events) >= self.high_water:
            if self._task is None or self._task.done():
                async with self._lock:
                    if len(self._events) >= self.high_water and not await self._ship_one(self.max_batch):
                        raise self._ship_error()
                continue
            await self._shipped.wait()  # emit() woke the shipper when the batch was full

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the background shipper on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._closed = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="troupe-event-buffer")
            self._task.add_done_callback(lambda _: self._shipped.set())  # waiters ship themselves now

    async def flush(self) -> None:
        """Ship everything buffered now and wait for it; raises :class:`EventShipError` if the log
        refuses after all attempts (the events stay buffered)."""
        async with self._lock:
            while self._events:
                if not await self._ship_one(self.max_batch):
                    raise self._ship_error()

    def _ship_error(self) -> EventShipError:
        return EventShipError(f"could not ship {len(self._events)} events: {self.last_error!r}",
                              pending=len(self._events))

    async def close(self) -> None:
        """Stop the background task (after the ship in progress, never mid-call: a cancelled call
        may have landed and would be sent twice), then flush the rest."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            await task
        await self.flush()

    # --- shipping ------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._closed:
            due = False  # partial batches go only when max_delay_s has passed
            if len(self._events) < self.max_batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.max_delay_s)
                except TimeoutError:
                    due = True
            self._wake.clear()
            async with self._lock:
                # One batch at a time; a batch that cannot be shipped is retried next round.
                while self._events and (due or len(self._events) >= self.max_batch) and not self._closed:
                    if not await self._ship_one(self.max_batch):
                        await self._clock.sleep(self.max_backoff_s)
                        break

    async def _ship_one(self, limit: int) -> bool:
        """Ship up to ``limit`` of the oldest events, retrying; removes them only once acknowledged.

        The ship runs as a task of its own that its caller's cancellation does not stop: a call
        that reached the log lands, so its batch must leave the buffer then, or the next ship would
        send it again. A ship a cancelled caller left running is waited for before the next one.
        """
        while self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
        if not self._events:
            return True
        task = asyncio.get_running_loop().create_task(self._ship_batch(self._events[:limit]))
        self._inflight = task
        return await asyncio.shield(task)

    async def _ship_batch(self, batch: list[Event]) -> bool:
        columns = to_columns(batch)
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                await self._ship(columns)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.failures += 1
                self.last_error = e
                _log.warning("shipping %d events failed (attempt %d/%d): %r", len(batch), attempt, self.attempts, e)
                if attempt < self.attempts:
                    await self._clock.sleep(delay)
                    delay = min(delay * 2, self.max_backoff_s)
                continue
            self._remove_shipped(batch)
            return True
        return False

    def _remove_shipped(self, batch: list[Event]) -> None:
        # emit() may have dropped from the head meanwhile (overflow): remove only what is still there.
        events = self._events
        n = len(batch)
        if events[:1] and events[0] is batch[0] and len(events) >= n and events[n - 1] is batch[-1]:
            del events[:n]
        else:
            shipped = {id(e) for e in batch}
            self._events = [e for e in events if id(e) not in shipped]
        self.shipped += n
        self._shipped.set()
        self._shipped = asyncio.Event()


__all__ = ["EventBuffer", "EventShipError", "Ship", "to_columns"]
