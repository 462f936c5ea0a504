"""One session's events, read from the lake and reduced to what a diff compares.

Each event of a compared type becomes an :class:`~troupe.runtime.sessiondiff.model.EventView`
with a ``key``: a short hash of the fields that say *what* happened (the tool and its arguments,
the model's text and tool calls, a message's content, a task's new status), never *when* or under
which random id. Ids that differ between two runs of the same thing (``t-…``, ``m-…``, ``s-…``,
run ids) and ISO timestamps are masked before hashing, so two runs of the same scripts compare equal.

Payload keys are read defensively: a key a newer (or older) payload version lacks reads as absent.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.ids import SessionId
from troupe.runtime.sessiondiff.model import EventView, SideInfo
from troupe.runtime.storage.location import Storage

COMPARED: Final = frozenset({
    "session.started", "session.finished", "turn.finished",
    "message.sent", "message.delivered",
    "llm.response", "llm.error",
    "tool.call", "tool.result", "tool.error", "guardrail.denied",
    "approval.requested", "approval.decided",
    "task.created", "task.status", "blackboard.put", "blackboard.expired",
    "agent.spawned", "agent.error", "budget.exceeded",
})
"""The event types a diff aligns: model calls, tool calls, messages, task and blackboard changes,
and the session's own start and end. ``agent.state``, ``llm.request`` (its content shows in the
response and the tool results before it) and progress events are left out."""

_IDS: Final = re.compile(r"\b[a-z]{1,3}-[0-9a-f]{16,}\b")
_TIMES: Final = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_COLUMNS: Final = ("event_id, ts, run_id, agent, type, seq, tool, tokens_in, tokens_out, duration_ms, "
                   "status, task_id, turn, model, payload")
DETAIL_CHARS: Final = 400
"""How much of a compared field a view keeps to show (the key hashes all of it)."""


class UnknownSessionError(ConfigError):
    """No session with that id (or id prefix) is in the lake."""


def normalize(text: str) -> str:
    """``text`` with random ids and timestamps masked (``<id>``, ``<ts>``)."""
    return _TIMES.sub("<ts>", _IDS.sub("<id>", text))


def _canon(value: Any) -> str:
    """A stable text of a JSON value (a JSON string inside is parsed first, so key order and
    spacing of the model's arguments do not count), ids and timestamps masked."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return normalize(value)
    return normalize(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def _calls(data: dict[str, Any]) -> list[tuple[str, str]]:
    calls = data.get("tool_calls") or []
    return [(str(c.get("name")), _canon(c.get("arguments", ""))) for c in calls if isinstance(c, dict)]


def compared_fields(type_: str, row: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What of an event a diff compares (and shows), by type."""
    get = data.get
    match type_:
        case "session.started":
            return {"input": get("input"), "entry": get("entry")}
        case "session.finished":
            return {"status": row.get("status"), "reply": get("reply"), "error": get("error")}
        case "turn.finished":
            return {"turn": get("turn"), "input": get("input"), "reply": get("reply")}
        case "message.sent":
            return {"to": get("to"), "topic": get("topic"), "kind": get("kind"), "content": get("content")}
        case "message.delivered":
            return {"sender": get("sender"), "kind": get("kind"), "content": get("content")}
        case "llm.response":
            calls = [{"name": n, "arguments": a} for n, a in _calls(data)]
            return {"text": get("text"), "tool_calls": calls, "finish_reason": get("finish_reason")}
        case "llm.error":
            return {"reason": get("reason"), "error": get("error")}
        case "tool.call":
            return {"tool": row.get("tool"), "arguments": get("arguments")}
        case "tool.result" | "tool.error":
            return {"tool": row.get("tool"), "result": get("result"), "error_type": get("error_type")}
        case "guardrail.denied":
            return {"tool": row.get("tool"), "reason": get("reason"), "error": get("error")}
        case "task.created":
            return {"goal": get("goal"), "assignee": get("assignee"), "input": get("input")}
        case "task.status":
            return {"from": get("from"), "to": get("to"), "output": get("output"), "error": get("error")}
        case "blackboard.put":
            return {"key": get("key"), "version": get("version"), "value": get("value")}
        case "agent.spawned":
            return {"parent": get("parent"), "tools": get("tools")}
        case _:
            return {"status": row.get("status"), **{k: v for k, v in data.items() if k not in ("v", "id")}}


def summary(type_: str, row: dict[str, Any], fields: dict[str, Any]) -> str:
    """A one-line label: ``tool.call calculator {"expression": "1+1"}``."""
    main = {"tool.call": "arguments", "tool.result": "result", "tool.error": "result", "message.sent": "content",
            "message.delivered": "content", "task.created": "goal", "task.status": "to", "blackboard.put": "key",
            "session.started": "input", "session.finished": "reply", "turn.finished": "reply"}.get(type_)
    if type_ == "llm.response":
        calls = fields.get("tool_calls") or []
        text = ", ".join(f"{c['name']}({c['arguments']})" for c in calls) or (fields.get("text") or "")
    else:
        text = "" if main is None else fields.get(main) or ""
    head = f"{type_} {row['tool']}" if row.get("tool") else type_
    text = " ".join(_cut(text).split())
    return f"{head} {text}".rstrip() if len(text) <= 120 else f"{head} {text[:119]}…"


def view(row: dict[str, Any], start: datetime) -> EventView:
    """The diff's view of one lake row."""
    try:
        data = json.loads(row["payload"] or "{}")
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    type_ = row["type"]
    fields = compared_fields(type_, row, data)
    key = hashlib.sha256("\x1f".join([type_, str(row.get("tool") or ""), _canon(fields)]).encode()).hexdigest()[:12]
    return EventView(
        event_id=row["event_id"], type=type_, agent=row.get("agent") or "", seq=int(row.get("seq") or 0),
        at_ms=round((row["ts"] - start).total_seconds() * 1000, 3), tool=row.get("tool"), status=row.get("status"),
        task_id=row.get("task_id"), turn=row.get("turn"), model=row.get("model"),
        tokens_in=row.get("tokens_in"), tokens_out=row.get("tokens_out"), duration_ms=row.get("duration_ms"),
        call_id=data.get("id") if type_.startswith("tool.") or type_ == "guardrail.denied" else None,
        key=key, summary=summary(type_, row, fields),
        detail={k: _cut(v) for k, v in fields.items() if v not in (None, "", [], {})},
        field_keys={k: hashlib.sha256(_canon(v).encode()).hexdigest()[:12] for k, v in fields.items()},
    )


def _known(lake: str | Path | Storage, prefix: str) -> list[str]:
    sql = (f"select session_id, min(ts) t from events where starts_with(session_id, '{prefix}') "
           "group by session_id order by t desc limit 6")
    return [r["session_id"] for r in query(lake, sql).to_pylist()]


def resolve(lake: str | Path | Storage, session_id: str) -> str:
    """The full id of a session in the lake: ``session_id`` itself, or the one session it is a
    prefix of; else :class:`UnknownSessionError` saying what is there."""
    try:
        sid = str(SessionId(session_id))
    except ValueError as e:
        raise UnknownSessionError(f"invalid session id {session_id!r}: {e}", session_id=session_id) from None
    matches = _known(lake, sid)
    if sid in matches:
        return sid
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownSessionError(f"session id {session_id!r} is ambiguous in the lake at {lake}: it starts "
                                  f"{', '.join(matches[:5])}{', ...' if len(matches) > 5 else ''}",
                                  session_id=session_id)
    recent = _known(lake, "")
    hint = f" (recent sessions: {', '.join(recent[:5])})" if recent else " (the lake has no sessions)"
    raise UnknownSessionError(f"no session {session_id!r} in the lake at {lake}{hint}", session_id=session_id)


def load(lake: str | Path | Storage, session_id: str) -> tuple[SideInfo, list[EventView]]:
    """A session's facts and its compared events in lake order (by time, then per-producer seq)."""
    sid = resolve(lake, session_id)
    rows = query(lake, f"select {_COLUMNS} from events where session_id = '{sid}' order by ts, seq").to_pylist()
    start = rows[0]["ts"]
    events = [view(r, start) for r in rows if r["type"] in COMPARED]
    info = side_info(sid, rows)
    return info, events


def side_info(session_id: str, rows: list[dict[str, Any]]) -> SideInfo:
    """The session's run, team, input, lineage and outcome, from its start and finish rows."""
    def payload(type_: str, last: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
        found = [r for r in rows if r["type"] == type_]
        if not found:
            return {}, None
        row = found[-1] if last else found[0]
        try:
            data = json.loads(row["payload"] or "{}")
        except ValueError:
            data = {}
        return (data if isinstance(data, dict) else {}), row

    started, _ = payload("session.started")
    finished, fin_row = payload("session.finished", last=True)
    turns = [json.loads(r["payload"] or "{}").get("reply") for r in rows if r["type"] == "turn.finished"]
    end = rows[-1]["ts"]
    return SideInfo(
        session_id=session_id, run_id=rows[0]["run_id"], team=started.get("team"), input=started.get("input"),
        entry=started.get("entry"), placement=started.get("placement"), started_at=rows[0]["ts"].isoformat(),
        status=fin_row["status"] if fin_row else None, reply=finished.get("reply"), error=finished.get("error"),
        duration_ms=(fin_row.get("duration_ms") if fin_row else None) or round((end - rows[0]["ts"]).total_seconds() * 1000, 3),
        turn_replies=[t if isinstance(t, str) else None for t in turns], events=len(rows),
        replay_of=started.get("replay_of"), forked_from=started.get("forked_from"), fork_point=started.get("fork_point"),
    )


__all__ = ["COMPARED", "UnknownSessionError", "compared_fields", "load", "normalize", "resolve", "side_info", "view"]
