"""The logic of the event-log actor, as plain Python so it can be tested without Ray.

Producers ship column-major batches (``events_to_columns``). The log buffers them and writes
Parquet in large batches (few, big files query fast), by size, by age, or on demand; a run's files
are compacted when the run finishes. Once :meth:`EventLogCore.append` has returned, the events are
the log's responsibility: a failed write keeps them buffered for the next flush, and
:meth:`EventLogCore.close` writes everything left.

With a ``wal_dir``, ``append`` first writes the batch to a write-ahead log (:mod:`troupe.runtime.storage.wal`), so
an acknowledged event also survives the death of the log's process: the next log opened on that
directory reads the leftover segments back and writes their rows to the lake (skipping rows the
lake already has, and rows of those events that a producer sends again). A segment is deleted only
once its rows are in Parquet.

Back-pressure: while ``max_buffered_rows`` rows are accepted and not yet in Parquet, ``append``
waits for the writes, so a slow disk (or object store) slows producers instead of filling memory.

Live viewers (``troupe run --stream``, a dashboard) subscribe to a session and long-poll
:meth:`EventLogCore.read`; ephemeral events such as ``llm.token`` go only to them, never to disk.

Positions: every lasting event gets its place in its session's order (``position``, 1, 2, 3 ...)
as the log accepts it, before the write-ahead log and the live tails see it, so the lake, the
write-ahead log and every viewer agree on it (:mod:`troupe.runtime.eventlog.positions`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.errors import ConfigError, TroupeError
from troupe.runtime.eventlog.columns import InvalidEventBatchError, check_lengths, take, to_arrow
from troupe.runtime.eventlog.lake import CompactionResult, LakeWriter, compact_run
from troupe.runtime.eventlog.observers import EventObserver
from troupe.runtime.eventlog.positions import Positions, last_in_lake
from troupe.runtime.eventlog.recovery import not_in_lake
from troupe.runtime.eventlog.stats import EventLogStats
from troupe.runtime.eventlog.tails import LiveTails, NotSubscribedError
from troupe.runtime.events import ARROW_SCHEMA, EPHEMERAL_TYPES
from troupe.runtime.storage.location import Storage, open_storage, redact
from troupe.runtime.storage.wal import Segment, WriteAheadLog

_log = logging.getLogger(__name__)
_POSITION: Final = ARROW_SCHEMA.get_field_index("position")

DEFAULT_FLUSH_ROWS: Final = 50_000
DEFAULT_FLUSH_INTERVAL_S: Final = 0.5
DEFAULT_TAIL_MAX: Final = 100_000
DEFAULT_TAIL_IDLE_S: Final = 600.0
DEFAULT_MAX_BUFFERED_ROWS: Final = 200_000
"""Rows accepted and not yet in Parquet at which ``append`` starts waiting (a few hundred MB at most)."""
WRITE_RETRY_S: Final = 0.5
"""Pause before a waiting ``append`` retries a write that failed."""


class EventLogClosedError(TroupeError):
    """``append`` after ``close``."""


class EventLogCore:
    """Buffers events, writes them to the lake, and serves per-session live tails.

    Not thread-safe: call it from one event loop (the actor's). Writes run in a worker thread
    (``asyncio.to_thread``) so long-poll readers are not stalled while Parquet is encoded.

    ``wal_dir`` turns on the write-ahead log (``None``: none, and a crash loses what is not yet in
    Parquet); a leftover segment there is recovered and written here, before this returns (a failed
    write keeps the rows for the next flush). ``wal_fsync`` makes each append reach the device, for
    machine crashes too. Only one live log may use a directory (:class:`troupe.runtime.storage.wal.WalBusyError`).
    """

    def __init__(
        self,
        lake: str | Path | Storage,
        *,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_buffered_rows: int = DEFAULT_MAX_BUFFERED_ROWS,
        wal_dir: str | Path | None = None,
        wal_fsync: bool = False,
        tail_max: int = DEFAULT_TAIL_MAX,
        tail_idle_s: float = DEFAULT_TAIL_IDLE_S,
        clock: Clock = SYSTEM_CLOCK,
        observers: Sequence[EventObserver] = (),
    ) -> None:
        if max_buffered_rows < 1:
            raise ConfigError(f"max_buffered_rows must be at least 1 (rows held before appends wait), "
                              f"got {max_buffered_rows}")
        self._storage = open_storage(lake)
        self._storage.check()  # a missing bucket fails here, not at the first flush
        self.lake = self._storage.location
        """The lake: an absolute local path or a ``pyarrow.fs`` URI (:mod:`troupe.runtime.storage.location`)."""
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.max_buffered_rows = max_buffered_rows
        self._clock = clock
        self.tails = LiveTails(tail_max=tail_max, tail_idle_s=tail_idle_s, clock=clock)
        """The live tails of watched sessions (``subscribe`` / ``read`` / ``unsubscribe``)."""
        self.observers: list[EventObserver] = list(observers)
        """Code that sees every accepted batch in this process (the OpenTelemetry live exporter)."""
        self._writer = LakeWriter(self._storage)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._oldest: float | None = None
        self._stats = EventLogStats()
        self._inflight: set[asyncio.Future[tuple[int, int]]] = set()
        self._inflight_rows = 0
        self._room = asyncio.Event()
        """Set (and replaced) whenever a write ends; appends waiting for room wait on the one they saw."""
        self._compact_lock = asyncio.Lock()
        self._closed = False
        self._segments: list[Segment] = []
        """Sealed write-ahead log segments whose rows are in ``_pending`` (recovered, or put back by a failed write)."""
        self._recovered: frozenset[str] = frozenset()
        """Event ids read back from the write-ahead log: a producer may send them again after a restart."""
        self.positions = Positions()
        """Each session's last stream position (:mod:`troupe.runtime.eventlog.positions`)."""
        self._wal = WriteAheadLog(wal_dir, ARROW_SCHEMA, fsync=wal_fsync) if wal_dir is not None else None
        if self._wal is not None:
            self._recover(self._wal)

    def _recover(self, wal: WriteAheadLog) -> None:
        recovery = wal.recover()
        table = recovery.table
        self._stats.wal_torn_segments = recovery.torn
        self._stats.wal_rows_recovered = table.num_rows
        self._segments = recovery.segments
        if table.num_rows:
            self._recovered = frozenset(table["event_id"].to_pylist())
            self.positions.floor(table)  # their sessions' counters go on after them
            fresh = not_in_lake(self._storage, table)
            self._stats.rows_duplicate += table.num_rows - fresh.num_rows
            if fresh.num_rows:
                self._pending.append(fresh)
                self._pending_rows = fresh.num_rows
                self._oldest = self._clock.monotonic()
            _log.warning("event log: recovered %d rows (%d already in the lake) from %d write-ahead log "
                         "segments in %s", table.num_rows, table.num_rows - fresh.num_rows,
                         len(recovery.segments), wal.directory)
        try:
            self._write_now()  # also deletes segments that held nothing left to write
        except Exception:
            _log.exception("event log: writing %d recovered rows failed; they stay buffered", self._pending_rows)

    # --- ingest --------------------------------------------------------------------------
    async def append(self, columns: Mapping[str, Sequence[Any]]) -> int:
        """Accept a column-major batch; returns how many events were accepted (all of them).

        ``ts`` may be datetimes (``events_to_columns``) or integer microseconds since the epoch
        (``EventBuffer``'s cheaper wire form); tail readers always get datetimes. ``position`` is
        set here (whatever the producer sent, or if it sent none): the next of each row's session.

        Persistent rows go to the write-ahead log (if any) and are buffered, and flushed here when
        ``flush_rows`` are buffered; every row goes to the live tail of its session if watched.
        While ``max_buffered_rows`` rows are not yet in Parquet this waits for writes first
        (back-pressure: a slow lake slows producers). Rows of events recovered from the
        write-ahead log are not buffered again when a producer re-sends them after a restart.
        """
        if self._closed:
            raise EventLogClosedError("the event log is closed")
        if "position" not in columns:
            columns = {**columns, "position": [None] * len(columns.get("type", ()))}
        n = check_lengths(columns)
        if n == 0:
            return 0
        types = columns["type"]
        keep = [i for i, t in enumerate(types) if t not in EPHEMERAL_TYPES]
        ephemeral = n - len(keep)
        dropped: list[int] = []
        if keep and self._recovered:
            keep, dropped = self._without_recovered(columns, keep)
        batch = columns if len(keep) == n else take(columns, keep)
        kept = len(keep)
        # Validate now (types, lengths, partition keys): a bad batch written later would
        # fail every flush after it; here it is refused and the producer hears about it.
        table = to_arrow(batch) if kept else None
        positions: list[int] = []
        if table is not None:
            await self._start_positions(batch)
            await self._wait_for_room()
            if self._closed:
                raise EventLogClosedError("the event log was closed while this batch waited for room")
            # No await from here to the tails: positions are handed out in the order rows reach them.
            positions = self.positions.assign(batch["session_id"])
            table = table.set_column(_POSITION, "position", pa.array(positions, pa.int64()))
            if self._wal is not None:
                self._wal.append(table)  # durable before it is acknowledged
        if self.tails:
            self.tails.deliver(*_positioned(columns, n, keep, positions, dropped))
        for observer in self.observers:
            try:
                observer.observe(columns, n)
            except Exception:  # an observer must never cost the lake a batch
                _log.exception("event log observer %r failed", observer)
        self._stats.rows_accepted += n
        self._stats.rows_ephemeral += ephemeral
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

    def _without_recovered(self, columns: Mapping[str, Sequence[Any]], keep: list[int]) -> tuple[list[int], list[int]]:
        """``keep`` without rows of recovered events (a producer re-sending a batch the dead log
        had acknowledged or written to its write-ahead log), and those rows."""
        ids = columns["event_id"]
        fresh = [i for i in keep if ids[i] not in self._recovered]
        if len(fresh) == len(keep):
            return keep, []
        self._stats.rows_duplicate += len(keep) - len(fresh)
        left = set(fresh)
        return fresh, [i for i in keep if i not in left]

    def open_sessions(self, session_ids: Sequence[str]) -> None:
        """Sessions that are new (no event anywhere yet): their positions start at 1 without a look
        at the lake. A session not declared so (resumed, or met after this log restarted) starts
        after the highest position the lake and the write-ahead log hold for it."""
        self.positions.fresh(session_ids)

    async def _start_positions(self, batch: Mapping[str, Sequence[Any]]) -> None:
        """Start the counters of the batch's sessions this log has not numbered yet (a look at the
        lake for each; a lake that cannot be read starts it after what was recovered, logged)."""
        unknown = self.positions.unknown(batch["session_id"])
        if not unknown:
            return
        runs = dict(zip(batch["session_id"], batch["run_id"], strict=True))
        for sid in unknown:
            try:
                last = await asyncio.to_thread(last_in_lake, self._storage, sid, runs[sid])
            except Exception:
                _log.exception("event log: could not read session %s's last position from the lake; "
                               "numbering it after what this log holds", sid)
                last = 0
            self.positions.start(sid, last)

    async def _wait_for_room(self) -> None:
        """Back-pressure: wait while ``max_buffered_rows`` rows are accepted and not yet in Parquet,
        writing them when no write is under way (a failed write is retried after a pause)."""
        if self._unwritten() < self.max_buffered_rows:
            return
        self._stats.appends_waited += 1
        while self._unwritten() >= self.max_buffered_rows and not self._closed:
            if self._inflight:
                await self._room.wait()
                continue
            try:
                await self._write_pending()
            except Exception:
                _log.exception("event log write failed while appends wait for room; retrying in %.1f s", WRITE_RETRY_S)
                await self._clock.sleep(WRITE_RETRY_S)

    def _unwritten(self) -> int:
        return self._pending_rows + self._inflight_rows

    # --- persistence ---------------------------------------------------------------------
    def _drain(self) -> tuple[list[pa.Table], list[Segment]]:
        """Take every buffered row, with the write-ahead log segments that hold them (sealed now)."""
        segments = self._segments + (self._wal.seal() if self._wal is not None else [])
        batches, self._pending, self._pending_rows, self._oldest = self._pending, [], 0, None
        self._segments = []
        return batches, segments

    def _restore(self, batches: list[pa.Table], segments: list[Segment]) -> None:
        self._pending[:0] = batches
        self._pending_rows += sum(b.num_rows for b in batches)
        self._oldest = self._clock.monotonic() if self._oldest is None else self._oldest
        self._segments[:0] = segments

    def _forget(self, segments: list[Segment]) -> None:
        """Delete segments whose rows are in Parquet (one left behind is recovered and deduplicated)."""
        if self._wal is None or not segments:
            return
        try:
            self._wal.delete(segments)
        except OSError:
            _log.exception("event log: could not delete written write-ahead log segments")

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
        batches, segments = self._drain()
        if not batches:
            self._forget(segments)  # they hold no row that is not in Parquet already
            return 0
        rows = sum(b.num_rows for b in batches)
        self._inflight_rows += rows
        write = asyncio.ensure_future(asyncio.to_thread(self._write, batches))
        self._inflight.add(write)
        write.add_done_callback(lambda fut: self._written(fut, batches, segments, rows))
        written, _ = await asyncio.shield(write)  # a cancelled caller must not abandon the write
        return written

    def _written(self, fut: asyncio.Future[tuple[int, int]], batches: list[pa.Table], segments: list[Segment],
                 rows: int) -> None:
        self._inflight.discard(fut)
        self._inflight_rows -= rows
        if fut.cancelled() or fut.exception() is not None:
            self._stats.write_errors += 1
            self._restore(batches, segments)
        else:
            self._count(*fut.result())
            self._forget(segments)
        self._room.set()
        self._room = asyncio.Event()

    def _write_now(self) -> int:
        """Write everything buffered in this thread; on failure the rows stay buffered and it raises."""
        batches, segments = self._drain()
        if not batches:
            self._forget(segments)
            return 0
        try:
            rows, files = self._write(batches)
        except BaseException:
            self._stats.write_errors += 1
            self._restore(batches, segments)
            raise
        self._count(rows, files)
        self._forget(segments)
        return rows

    def _count(self, rows: int, files: int) -> None:
        self._stats.rows_written += rows
        self._stats.files_written += files
        self._stats.flushes += 1

    async def maybe_flush(self) -> int:
        """Flush if the oldest buffered row is older than ``flush_interval_s``; also drop tails
        nobody has read for ``tail_idle_s`` (a viewer that died without unsubscribing)."""
        self.tails.drop_idle()
        now = self._clock.monotonic()
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
        """Flush everything and refuse further appends; returns rows written by this flush.

        Then the write-ahead log is closed and its directory removed; if the flush failed, it
        raises and the segments stay for a later ``close`` or the next log on that directory."""
        self._closed = True
        rows = await self.flush()
        self._close_wal()
        for observer in self.observers:
            try:
                await observer.aclose()
            except Exception:
                _log.exception("event log observer %r failed to close", observer)
        return rows

    def close_sync(self) -> int:
        """Synchronous last-chance flush (for process shutdown hooks outside the event loop).

        A write still running in its thread cannot be awaited here: its segments stay, and the next
        log on this write-ahead log directory recovers them (skipping rows the lake already has)."""
        self._closed = True
        rows = self._write_now()
        self._close_wal()
        return rows

    def _close_wal(self) -> None:
        if self._wal is not None and not self._inflight and not self._pending:
            self._wal.close()

    # --- live tail (see LiveTails) ---------------------------------------------------------
    def subscribe(self, session_id: str) -> int:
        """Start keeping a live tail for a session; returns the cursor to read from (counted: each
        ``subscribe`` needs its own ``unsubscribe``)."""
        return self.tails.subscribe(session_id)

    def unsubscribe(self, session_id: str) -> None:
        self.tails.unsubscribe(session_id)

    async def read(self, session_id: str, cursor: int, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """Events of a session after ``cursor``, waiting up to ``timeout`` seconds for some
        (:meth:`LiveTails.read`)."""
        return await self.tails.read(session_id, cursor, timeout)

    # --- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        self._stats.rows_buffered = self._pending_rows
        self._stats.rows_in_flight = self._inflight_rows
        self._stats.subscribed_sessions = len(self.tails)
        if self._wal is not None:
            self._stats.wal_segments = self._wal.segments
            self._stats.wal_bytes = self._wal.bytes
        wal_dir = str(self._wal.directory) if self._wal is not None else None
        return {**self._stats.__dict__, "lake": redact(self.lake), "wal_dir": wal_dir,
                "sessions_numbered": len(self.positions), "position_lookups": self.positions.lookups}


def _positioned(columns: Mapping[str, Sequence[Any]], n: int, keep: list[int], positions: list[int],
                dropped: list[int]) -> tuple[Mapping[str, Sequence[Any]], int]:
    """The batch as the live tails get it: each kept row with its position (ephemeral rows with
    none), without rows of events recovered from the write-ahead log (``dropped``)."""
    column: list[int | None] = [None] * n
    for i, p in zip(keep, positions, strict=True):
        column[i] = p
    out = {**columns, "position": column}
    if dropped:
        gone = set(dropped)
        rows = [i for i in range(n) if i not in gone]
        return take(out, rows), len(rows)
    return out, n


__all__ = [
    "DEFAULT_MAX_BUFFERED_ROWS",
    "EventLogClosedError",
    "EventLogCore",
    "EventLogStats",
    "InvalidEventBatchError",
    "NotSubscribedError",
]
