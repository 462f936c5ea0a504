"""The event log's counters (``EventLogCore.stats()``, the event-log actor's ``stats``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EventLogStats:
    """Counters for ``stats()``. ``rows_buffered`` + ``rows_in_flight`` are accepted and not yet in
    Parquet: with a write-ahead log they are in its segments, without one a crash would lose them."""

    rows_accepted: int = 0
    rows_ephemeral: int = 0
    rows_written: int = 0
    rows_buffered: int = 0
    rows_in_flight: int = 0
    """Rows of Parquet writes under way."""
    rows_duplicate: int = 0
    """Recovered rows the lake already had, and rows of recovered events that a producer sent again."""
    files_written: int = 0
    flushes: int = 0
    write_errors: int = 0
    compactions: int = 0
    subscribed_sessions: int = 0
    appends_waited: int = 0
    """Appends that waited for Parquet writes (back-pressure)."""
    wal_segments: int = 0
    """Write-ahead log segments on disk now."""
    wal_bytes: int = 0
    wal_rows_recovered: int = 0
    """Rows read back from segments a previous process left."""
    wal_torn_segments: int = 0
    """Recovered segments that ended in a torn (never acknowledged) record."""


__all__ = ["EventLogStats"]
