"""Stream positions: each lasting event's place (1, 2, 3 ...) in its session's order.

The event log is the one place where all of a session's events are put in one order (every host of
a session, in every placement, ships to the event log of the runtime that opened it), so it numbers
them as it accepts them and the number is written with the row (the ``position`` column). A server
gives each event its position as the SSE ``id``, live or read back from the lake, so a client that
reconnects anywhere resumes exactly.

A counter starts at 0 only for a session its backend declared new (:meth:`Positions.fresh`). Any
other session the log meets (a resumed one, or any session after the log itself restarted) starts
after the highest position already recorded for it: in the lake (:func:`last_in_lake`) and in what
the log recovered from its write-ahead log (:meth:`Positions.floor`). Rows written before positions
existed (null ``position``) count as positions 1..k, in the order a reader gives them
(``ts, seq, event_id``), so a resumed old session continues after them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from troupe.runtime.eventlog.lake import EVENTS_DIR
from troupe.runtime.events import ARROW_SCHEMA
from troupe.runtime.storage.location import Storage

_log = logging.getLogger(__name__)


def run_parts(storage: Storage, run_id: str) -> list[Any]:
    """The Parquet parts of one run (every date directory)."""
    from urllib.parse import quote

    enc = f"run_id={quote(run_id, safe='')}"
    return [f for day in storage.dirs(EVENTS_DIR) if day.startswith("date=")
            for f in storage.file_infos(f"{EVENTS_DIR}/{day}/{enc}", suffix=".parquet")]


def last_of(table: pa.Table) -> int:
    """The last position of one session's rows: the highest ``position``, or, when no row has one
    (written before positions), how many distinct events there are."""
    if table.num_rows == 0:
        return 0
    top = pc.max(table["position"]).as_py()
    if top is not None:
        return int(top)
    return len(pc.unique(table["event_id"]))


def last_in_lake(storage: Storage, session_id: str, run_id: str) -> int:
    """The highest position the lake holds for a session of ``run_id`` (0: none yet)."""
    parts = run_parts(storage, run_id)
    if not parts:
        return 0
    data = storage.dataset(parts, EVENTS_DIR, schema=ARROW_SCHEMA)
    table = data.to_table(columns=["event_id", "position"], filter=ds.field("session_id") == session_id)
    return last_of(table)


class Positions:
    """Per-session counters of one event log (plain Python, one event loop)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._floors: dict[str, int] = {}
        self.lookups = 0
        """Sessions whose start was looked up in the lake (neither declared new nor seen before)."""

    def __len__(self) -> int:
        return len(self._last)

    def fresh(self, session_ids: Iterable[str]) -> None:
        """Sessions that have no event anywhere yet: numbered from 1 (a known one keeps its counter)."""
        for sid in session_ids:
            self._last.setdefault(sid, self._floors.pop(sid, 0))

    def floor(self, table: pa.Table) -> None:
        """Positions recovered from the write-ahead log: a session's counter starts after them."""
        if table.num_rows == 0:
            return
        for sid, top in _max_by_session(table).items():
            self._floors[sid] = max(self._floors.get(sid, 0), top)

    def unknown(self, session_ids: Sequence[str]) -> list[str]:
        """Sessions in a batch without a counter yet."""
        last = self._last
        return [s for s in dict.fromkeys(session_ids) if s not in last]

    def start(self, session_id: str, last: int) -> None:
        """Start a session's counter after ``last`` (and after its recovered rows); a counter set
        meanwhile (by another append) is kept."""
        if session_id not in self._last:
            self._last[session_id] = max(last, self._floors.pop(session_id, 0))
            self.lookups += 1

    def assign(self, session_ids: Sequence[str]) -> list[int]:
        """The next position of each row's session, in row order (every session must be started)."""
        last = self._last
        out = []
        for sid in session_ids:
            n = last[sid] + 1
            last[sid] = n
            out.append(n)
        return out


def _max_by_session(table: pa.Table) -> dict[str, int]:
    grouped = table.select(["session_id", "position"]).group_by("session_id").aggregate([("position", "max")])
    return {s: int(p) for s, p in zip(grouped["session_id"].to_pylist(), grouped["position_max"].to_pylist(),
                                      strict=True) if s is not None and p is not None}


__all__ = ["Positions", "last_in_lake", "last_of", "run_parts"]
