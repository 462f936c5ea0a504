"""What the server reads from the lake: a session's events in stream order, and the runs list."""

from __future__ import annotations

import json
from typing import Any

from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event
from troupe.runtime.server.models import RunInfo

_COLUMNS = ("event_id, ts, run_id, session_id, task_id, turn, agent, type, seq, parent_event_id, duration_ms, "
            "model, tool, tokens_in, tokens_out, status, payload")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def session_events(lake: str, session_id: str) -> list[Event]:
    """Every recorded event of a session, in stream order ``(ts, seq, event_id)``."""
    rows = query(lake, f"select {_COLUMNS} from events where session_id = {_sql_str(session_id)} "
                       "order by ts, seq, event_id").to_pylist()
    return [Event.model_validate({k: v for k, v in r.items() if v is not None}) for r in rows]


_RUNS = """
with s as (
  select session_id, any_value(run_id) as run_id, count(*) as n,
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
    rows = query(lake, _RUNS.format(where=where, user=who, limit=int(limit))).to_pylist()
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


__all__ = ["run_of", "runs", "session_events"]
