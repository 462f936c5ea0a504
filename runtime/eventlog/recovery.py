"""Rows recovered from a write-ahead log that the lake already has (a log that died mid-write)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from troupe.runtime.errors import TroupeError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.storage.location import Storage

_log = logging.getLogger(__name__)


def _sql_list(values: Sequence[Any]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def not_in_lake(storage: Storage, table: pa.Table) -> pa.Table:
    """``table`` without the rows the lake already has: a process that died during a Parquet
    write of several files, or after it and before deleting its segments, left rows in both."""
    days = pc.unique(pc.cast(pc.cast(table["ts"], pa.timestamp("us")), pa.date32())).to_pylist()
    runs = pc.unique(table["run_id"]).to_pylist()
    sql = (f"SELECT event_id FROM events WHERE date IN ({_sql_list(days)}) "
           f"AND run_id IN ({_sql_list(runs)})")  # hive keys: only these partitions are read
    try:
        found = query(storage, sql)["event_id"]
    except (TroupeError, OSError) as e:
        _log.warning("event log: could not check the lake for recovered rows already written (%s); "
                     "writing them all", e)
        return table
    if len(found) == 0:
        return table
    return table.filter(pc.invert(pc.is_in(table["event_id"], value_set=found.combine_chunks())))


__all__ = ["not_in_lake"]
