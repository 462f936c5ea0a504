"""What the server reads from the lake: a session's events in stream order, and the runs list.

The lake changes under a reader: :func:`~troupe.runtime.eventlog.lake.compact_run` writes a run's
merged file and then deletes the parts it merged, while sessions are still streamed. A reader that
listed the files before the swap may find a part gone (DuckDB: "Cannot open file"), and one that
listed them during it sees the run's rows twice. So :func:`session_events` lists the files itself,
reads exactly that list, and when a listed part has vanished lists again (the merged file is in
place before any part is deleted, so the new list has every row) — at most ``READ_TRIES`` times,
then it raises :class:`LakeChangingError`; rows are de-duplicated by ``event_id``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import pyarrow as pa
import pyarrow.dataset as ds

from troupe.runtime.errors import TroupeError
from troupe.runtime.eventlog.lake import EVENTS_DIR, LakeQueryError, query
from troupe.runtime.events import ARROW_SCHEMA, Event
from troupe.runtime.server.models import RunInfo
from troupe.runtime.server.stream import stream_key
from troupe.runtime.storage.location import Storage, open_storage

READ_TRIES: Final = 5
"""Listings a read of a session may take while compactions remove the parts it listed."""
RETRY_PAUSE_S: Final = 0.02
T = TypeVar("T")


class LakeChangingError(TroupeError):
    """The files of a session kept vanishing while it was read (``READ_TRIES`` listings in a row)."""


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _vanished(e: BaseException) -> bool:
    """A listed file was gone when it was opened (pyarrow: ``FileNotFoundError``; DuckDB: its IO error)."""
    if isinstance(e, FileNotFoundError):
        return True
    text = str(e)
    return isinstance(e, (OSError, LakeQueryError)) and any(
        m in text for m in ("No such file", "Cannot open file", "not found", "does not exist"))


def retrying(read: Callable[[], T], *, tries: int = READ_TRIES) -> T:
    """``read()`` again (it lists the files afresh) while a file it listed vanished under it."""
    for attempt in range(1, tries + 1):
        try:
            return read()
        except (OSError, LakeQueryError) as e:
            if not _vanished(e):
                raise
            if attempt == tries:
                raise LakeChangingError(f"the lake's files kept changing while they were read ({tries} tries): {e}",
                                        tries=tries) from None
            time.sleep(RETRY_PAUSE_S * attempt)
    raise AssertionError("unreachable")


def list_parts(storage: Storage, run_id: str | None) -> list[Any]:
    """The Parquet parts that may hold a session's rows: its run's (``run_id``), else the whole lake's."""
    if run_id is None:
        return storage.file_infos(EVENTS_DIR, suffix=".parquet", recursive=True)
    enc = f"run_id={quote(run_id, safe='')}"
    return [f for day in storage.dirs(EVENTS_DIR) if day.startswith("date=")
            for f in storage.file_infos(f"{EVENTS_DIR}/{day}/{enc}", suffix=".parquet")]


def _read_once(storage: Storage, session_id: str, run_id: str | None) -> pa.Table:
    parts = list_parts(storage, run_id)
    if not parts:
        return ARROW_SCHEMA.empty_table()
    data = storage.dataset(parts, EVENTS_DIR, schema=ARROW_SCHEMA)
    return data.to_table(filter=ds.field("session_id") == session_id)


def session_events(lake: str, session_id: str, *, run_id: str | None = None, tries: int = READ_TRIES) -> list[Event]:
    """Every recorded event of a session, once each, in stream order (by ``position``; rows written
    before positions first, by ``(ts, seq, event_id)``: :func:`~troupe.runtime.server.stream.stream_key`)
    (``run_id``: only that run's files are read, much less than the whole lake)."""
    storage = open_storage(lake)
    table = retrying(lambda: _read_once(storage, session_id, run_id), tries=tries)
    seen: set[str] = set()
    events = []
    for r in table.to_pylist():
        if r["event_id"] in seen:  # listed while a compaction had both the parts and the merged file
            continue
        seen.add(r["event_id"])
        events.append(Event.model_validate({k: v for k, v in r.items() if v is not None}))
    events.sort(key=stream_key)
    return events


_RUNS = """
with s as (
  select session_id, any_value(run_id) as run_id, count(distinct event_id) as n,
         min(ts) filter (where type = 'session.started') as started_at,
         arg_min(payload, ts) filter (where type = 'session.started') as sp,
         max(ts) filter (where type = 'session.finished') as finished_at,
         arg_max(payload, ts) filter (where type = 'session.finished') as fp,
         arg_max(status, ts) filter (where type = 'session.finished') as fstatus
  from events {where} group by session_id)
select * from s where started_at is not null {user} order by started_at desc limit {limit}
"""


def _payload(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def runs(lake: str, *, limit: int = 100, user: str | None = None, session_id: str | None = None) -> list[RunInfo]:
    """Sessions recorded in the lake, newest first (``user``: only theirs; ``session_id``: that one)."""
    where = f"where session_id = {_sql_str(session_id)}" if session_id else ""
    who = f"and json_extract_string(sp, '$.user') = {_sql_str(user)}" if user is not None else ""
    rows = retrying(lambda: query(lake, _RUNS.format(where=where, user=who, limit=int(limit)))).to_pylist()
    out = []
    for r in rows:
        sp, fp = _payload(r["sp"]), _payload(r["fp"])
        out.append(RunInfo(session_id=r["session_id"], run_id=r["run_id"], team=sp.get("team"), user=sp.get("user"),
                           status=r["fstatus"] or ("running" if r["finished_at"] is None else "finished"),
                           started_at=r["started_at"], finished_at=r["finished_at"], reply=fp.get("reply"),
                           error=fp.get("error"), events=r["n"]))
    return out


def run_of(lake: str, session_id: str) -> RunInfo | None:
    found = runs(lake, limit=1, session_id=session_id)
    return found[0] if found else None


__all__ = ["READ_TRIES", "LakeChangingError", "list_parts", "retrying", "run_of", "runs", "session_events"]
