"""The logic of the event-log actor, as plain Python so it can be tested without Ray.

Producers ship column-major batches (``events_to_columns``). The log buffers them and writes
Parquet in large batches (few, big files query fast), by size, by age, or on demand; a run's files
are compacted when the run finishes. Once :meth:`EventLogCore.append` has returned, the events are
the log's responsibility: a failed write keeps them buffered for the next flush, and
:meth:`EventLogCore.close` writes everything left.

Live viewers (``troupe run --stream``, a dashboard) subscribe to a session and long-poll
:meth:`EventLogCore.read`; ephemeral events such as ``llm.token`` go only to them, never to disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.errors import TroupeError
from runtime.events import ARROW_SCHEMA, EPHEMERAL_TYPES, EVENT_COLUMNS
from runtime.lake import CompactionResult, LakeWriter, compact_run
from runtime.storage import Storage, open_storage, redact

Columns = dict[str, list[Any]]
_log = logging.getLogger(__name__)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

DEFAULT_FLUSH_ROWS: Final = 50_000
DEFAULT_FLUSH_INTERVAL_S: Final = 0.5
DEFAULT_TAIL_MAX: Final = 100_000
DEFAULT_TAIL_IDLE_S: Final = 600.0


class EventLogClosedError(TroupeError):
    """``append`` after ``close``."""


class InvalidEventBatchError(TroupeError):
    """A batch that cannot become rows of :data:`ARROW_SCHEMA` (missing column, wrong type)."""


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


@dataclass
class EventLogStats:
    """Counters for ``stats()``; ``rows_buffered`` is what a crash right now would lose."""

    rows_accepted: int = 0
    rows_ephemeral: int = 0
    rows_written: int = 0
    rows_buffered: int = 0
    files_written: int = 0
    flushes: int = 0
    write_errors: int = 0
    compactions: int = 0
    subscribed_sessions: int = 0


def _take(columns: Mapping[str, Sequence[Any]], keep: list[int]) -> Columns:
    return {name: [columns[name][i] for i in keep] for name in EVENT_COLUMNS}


def _to_arrow(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    try:
        table = pa.Table.from_pydict({name: columns[name] for name in EVENT_COLUMNS}, schema=ARROW_SCHEMA)
    except (KeyError, pa.ArrowException, TypeError, ValueError) as e:
        raise InvalidEventBatchError(f"bad event batch: {e!r}") from None
    if table["ts"].null_count or table["run_id"].null_count:
        raise InvalidEventBatchError("bad event batch: every event needs a ts and a run_id")
    return table


class EventLogCore:
    """Buffers events, writes them to the lake, and serves per-session live tails.

    Not thread-safe: call it from one event loop (the actor's). Writes run in a worker thread
    (``asyncio.to_thread``) so long-poll readers are not stalled while Parquet is encoded.
    """

    def __init__(
        self,
        lake: str | Path | Storage,
        *,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        tail_max: int = DEFAULT_TAIL_MAX,
        tail_idle_s: float = DEFAULT_TAIL_IDLE_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._storage = open_storage(lake)
        self._storage.check()  # a missing bucket fails here, not at the first flush
        self.lake = self._storage.location
        """The lake: an absolute local path or a ``pyarrow.fs`` URI (:mod:`runtime.storage`)."""
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.tail_max = tail_max
        self.tail_idle_s = tail_idle_s
        self._clock = clock
        self._writer = LakeWriter(self._storage)
        self._pending: list[Columns] = []
        self._pending_rows = 0
        self._oldest: float | None = None
        self._tails: dict[str, _Tail] = {}
        self._stats = EventLogStats()
        self._inflight: set[asyncio.Future[tuple[int, int]]] = set()
        self._compact_lock = asyncio.Lock()
        self._closed = False

    # --- ingest --------------------------------------------------------------------------
    async def append(self, columns: Mapping[str, Sequence[Any]]) -> int:
        """Accept a column-major batch; returns how many events were accepted (all of them).

        ``ts`` may be datetimes (``events_to_columns``) or integer microseconds since the epoch
        (``EventBuffer``'s cheaper wire form); tail readers always get datetimes.

        Persistent rows are buffered (and flushed here when the buffer is full, which also
        back-pressures producers); every row goes to the live tail of its session if watched.
        """
        if self._closed:
            raise EventLogClosedError("the event log is closed")
        n = len(columns.get("type", ()))
        if any(len(columns.get(name, ())) != n for name in EVENT_COLUMNS):
            raise InvalidEventBatchError("bad event batch: every column of the schema, all of one length")
        if n == 0:
            return 0
        types = columns["type"]
        ephemeral = [i for i, t in enumerate(types) if t in EPHEMERAL_TYPES]
        if ephemeral:
            drop = set(ephemeral)
            batch = _take(columns, [i for i in range(n) if i not in drop])
        else:
            batch = columns
        kept = n - len(ephemeral)
        # Validate now (types, lengths, partition keys): a bad batch written later would
        # fail every flush after it; here it is refused and the producer hears about it.
        table = _to_arrow(batch) if kept else None
        if self._tails:
            self._deliver(columns, n)
        self._stats.rows_accepted += n
        self._stats.rows_ephemeral += len(ephemeral)
        if table is not None:
            if not self._pending:
                self._oldest = self._clock.monotonic()
            self._pending.append(table)
            self._pending_rows += kept
        if self._pending_rows >= self.flush_rows:
            try:
                await self._write_pending()
            except Exception:  # the rows stay buffered; the next flush retries them
                _log.exception("event log flush failed; %d rows kept buffered", self._pending_rows)
        return n

    def _deliver(self, columns: Mapping[str, Sequence[Any]], n: int) -> None:
        sessions = columns["session_id"]
        touched: set[_Tail] = set()
        for i in range(n):
            tail = self._tails.get(sessions[i])
            if tail is None:
                continue
            if len(tail.events) == tail.events.maxlen:
                tail.start += 1
            row = {name: columns[name][i] for name in EVENT_COLUMNS}
            if isinstance(row["ts"], int):  # the producers' wire form (runtime.event_buffer.to_columns)
                row["ts"] = _EPOCH + timedelta(microseconds=row["ts"])
            tail.events.append(row)
            touched.add(tail)
        for tail in touched:
            tail.waker.set()
            tail.waker = asyncio.Event()

    # --- persistence ---------------------------------------------------------------------
    def _drain(self) -> list[pa.Table]:
        batches, self._pending, self._pending_rows, self._oldest = self._pending, [], 0, None
        return batches

    def _restore(self, batches: list[pa.Table]) -> None:
        self._pending[:0] = batches
        self._pending_rows += sum(b.num_rows for b in batches)
        self._oldest = self._clock.monotonic() if self._oldest is None else self._oldest

    def _write(self, batches: list[pa.Table]) -> tuple[int, int]:
        table = pa.concat_tables(batches)
        files = self._writer.write(table)
        return table.num_rows, len(files)

    async def flush(self) -> int:
        """Put every event accepted so far on disk, including writes already under way (a
        periodic flush); returns the rows this call wrote. On failure the rows stay buffered."""
        earlier = list(self._inflight)
        rows = await self._write_pending()
        if earlier:
            results = await asyncio.gather(*earlier, return_exceptions=True)
            if any(isinstance(r, BaseException) for r in results):
                rows += await self._write_pending()  # a failed write put its rows back
        return rows

    async def _write_pending(self) -> int:
        """Write what is buffered now (not waiting for other writes); returns the rows written."""
        batches = self._drain()
        if not batches:
            return 0
        write = asyncio.ensure_future(asyncio.to_thread(self._write, batches))
        self._inflight.add(write)
        write.add_done_callback(lambda fut: self._written(fut, batches))
        rows, _ = await asyncio.shield(write)  # a cancelled caller must not abandon the write
        return rows

    def _written(self, fut: asyncio.Future[tuple[int, int]], batches: list[pa.Table]) -> None:
        self._inflight.discard(fut)
        if fut.cancelled() or fut.exception() is not None:
            self._stats.write_errors += 1
            self._restore(batches)
            return
        self._count(*fut.result())

    def _count(self, rows: int, files: int) -> None:
        self._stats.rows_written += rows
        self._stats.files_written += files
        self._stats.flushes += 1

    async def maybe_flush(self) -> int:
        """Flush if the oldest buffered row is older than ``flush_interval_s``; also drop tails
        nobody has read for ``tail_idle_s`` (a viewer that died without unsubscribing)."""
        now = self._clock.monotonic()
        for sid in [s for s, t in self._tails.items() if now - t.last_read > self.tail_idle_s]:
            del self._tails[sid]
        if self._oldest is not None and now - self._oldest >= self.flush_interval_s:
            return await self._write_pending()
        return 0

    async def finish_run(self, run_id: str) -> CompactionResult:
        """Flush, then compact the run's files (one file per date directory)."""
        await self.flush()
        async with self._compact_lock:  # two compactions of one run would delete each other's input
            result = await asyncio.to_thread(compact_run, self._storage, run_id)
        self._stats.compactions += 1
        return result

    async def close(self) -> int:
        """Flush everything and refuse further appends; returns rows written by this flush."""
        self._closed = True
        return await self.flush()

    def close_sync(self) -> int:
        """Synchronous last-chance flush (for process shutdown hooks outside the event loop)."""
        self._closed = True
        batches = self._drain()
        if not batches:
            return 0
        try:
            rows, files = self._write(batches)
        except BaseException:
            self._stats.write_errors += 1
            self._restore(batches)
            raise
        self._count(rows, files)
        return rows

    # --- live tail -----------------------------------------------------------------------
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

    # --- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        self._stats.rows_buffered = self._pending_rows
        self._stats.subscribed_sessions = len(self._tails)
        return {**self._stats.__dict__, "lake": redact(self.lake)}


__all__ = [
    "EventLogClosedError",
    "EventLogCore",
    "EventLogStats",
    "InvalidEventBatchError",
    "NotSubscribedError",
]
