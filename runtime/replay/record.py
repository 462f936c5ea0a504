"""A session's record, read from the lake: its team config, inputs and events, and what each agent's
replay is served (:class:`~troupe.runtime.agent.recorded.AgentRecording`)."""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.agent.recorded import (
    AgentRecording,
    RecordedApproval,
    RecordedCall,
    RecordedMessage,
    RecordedRecall,
    RecordedResult,
)
from troupe.runtime.config import TeamConfig
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events.payload import VERSION_KEY
from troupe.runtime.llm.types import LLMResponse, ToolCall, Usage
from troupe.runtime.redact import REDACTED

COLUMNS = "event_id, ts, seq, agent, type, tool, status, turn, task_id, parent_event_id, model, tokens_in, tokens_out, payload"


class UnknownSessionError(ConfigError):
    """The lake holds no events of that session."""


class RecordTooOldError(ConfigError):
    """The session was recorded before records were complete (no team config in ``session.started``)."""


class Row(BaseModel):
    """One event of a record (the columns a replay needs; ``data`` is the payload as a dict)."""

    event_id: str
    ts: datetime
    seq: int = 0
    agent: str | None = None
    type: str
    tool: str | None = None
    status: str | None = None
    turn: int | None = None
    task_id: str | None = None
    parent_event_id: str | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class SessionRecord(BaseModel):
    """Everything the lake holds of one session, in the order it happened."""

    session_id: str
    rows: list[Row]
    config: dict[str, Any] | None = None
    """The team config as the session ran it (``None``: recorded before v2 of ``session.started``)."""
    input: str = ""
    conversation: bool = False
    turn_inputs: dict[int, str] = Field(default_factory=dict)
    """Each user turn's input (turn 1's is ``input``), from ``turn.finished``."""
    reply: str | None = None
    status: str | None = None
    truncated: bool = False
    """Some recorded text was cut: a replay serves it as cut, so it cannot be exact."""

    def team(self) -> TeamConfig:
        if self.config is None:
            raise RecordTooOldError(
                f"session {self.session_id} was recorded without its team config (before session.started v2): "
                "it cannot be replayed or forked; run it again to record it completely", session=self.session_id)
        return TeamConfig.model_validate(_unredacted(self.config))

    def inputs(self) -> list[str]:
        """The user's messages in order (a simulated user's turns are its own model's, not these)."""
        last = max(self.turn_inputs, default=1)
        return [self.input, *(self.turn_inputs.get(n, "") for n in range(2, last + 1))]

    def index(self, event_id: str) -> int:
        for i, row in enumerate(self.rows):
            if row.event_id == event_id:
                return i
        raise ConfigError(f"event {event_id!r} is not an event of session {self.session_id}", event=event_id,
                          session=self.session_id)

    def recordings(self, keep: Callable[[int, Row], bool] | None = None) -> dict[str, AgentRecording]:
        """Each agent's model calls and tool outcomes (those ``keep(index, row)`` accepts; all by default)."""
        out: dict[str, AgentRecording] = {}
        pending: dict[str, tuple[int | None, str | None]] = {}
        call_ids = _call_ids(self.rows)
        batches, starts = _batches(self.rows, keep)
        for i, row in enumerate(self.rows):
            agent = row.agent or ""
            if row.type == "llm.request":
                pending[agent] = (row.data.get("messages"), row.data.get("last"))
                continue
            if keep is not None and not keep(i, row):
                continue
            rec = out.setdefault(agent, AgentRecording())
            if row.type == "llm.response" and not row.data.get("source"):
                response = _response(row, call_ids.get(row.event_id, []))
                if row.status == "replayed" and any(c.response == response for c in rec.calls):
                    continue  # a turn replayed after a crash: the record already holds this answer
                messages, last = pending.pop(agent, (None, None))
                rec.calls.append(RecordedCall(messages=messages, last=last, response=response, event_id=row.event_id,
                                              truncated=bool(row.data.get("truncated"))))
            elif row.type == "llm.error":
                messages, last = pending.pop(agent, (None, None))
                rec.calls.append(RecordedCall(messages=messages, last=last, error=row.data, event_id=row.event_id))
            elif row.type in ("tool.result", "tool.error") and row.data.get("id") not in rec.results:
                rec.results[str(row.data.get("id"))] = RecordedResult(
                    ok=row.type == "tool.result", content=str(row.data.get("result") or ""),
                    error_type=row.data.get("error_type"), event_id=row.event_id, truncated=bool(row.data.get("truncated")))
            elif row.type == "approval.decided" and row.data.get("call_id"):
                rec.approvals[str(row.data["call_id"])] = RecordedApproval.model_validate(row.data)
            elif row.type == "memory.recalled" and row.data.get("source") == "turn":
                turn = bisect.bisect_left(starts.get(agent, []), i) - 1  # the turn it opened
                if turn >= 0 and all(r.turn != turn for r in rec.recalls):  # a turn replayed after a crash: once
                    rec.recalls.append(_recall(row, turn))
        for agent, taken in batches.items():
            out.setdefault(agent, AgentRecording()).batches = taken
        return out


def _recall(row: Row, turn: int) -> RecordedRecall:
    d = row.data
    v1 = int(d.get(VERSION_KEY, 1)) < 2  # no text: a replay can only compare a live recall's entries
    return RecordedRecall(turn=turn, ids=[str(i) for i in d.get("entry_ids") or ()],
                          text=None if v1 else str(d.get("text") or ""), tainted=list(d.get("tainted") or ()),
                          query=str(d.get("query") or ""), tokens=int(d.get("tokens") or 0),
                          left_out=int(d.get("left_out") or 0), event_id=row.event_id)


def _batches(rows: list[Row], keep: Callable[[int, Row], bool] | None
             ) -> tuple[dict[str, list[list[RecordedMessage]]], dict[str, list[int]]]:
    """Each agent's turn batches: its ``message.delivered`` rows up to the ``agent.state`` that starts the
    turn. A turn replayed after a crash delivers its batch again (the same message ids): taken once.
    Also where each of those turns started (row indices, by agent)."""
    out: dict[str, list[list[RecordedMessage]]] = {}
    starts: dict[str, list[int]] = {}
    open_: dict[str, list[RecordedMessage]] = {}
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        agent = row.agent or ""
        if row.type == "message.delivered" and (keep is None or keep(i, row)):
            if (agent, str(row.data.get("id"))) not in seen:
                seen.add((agent, str(row.data.get("id"))))
                open_.setdefault(agent, []).append(RecordedMessage(
                    sender=str(row.data.get("sender") or ""), kind=str(row.data.get("kind") or ""),
                    content=str(row.data.get("content") or "")))
        elif row.type == "agent.state" and row.status == "running" and open_.get(agent):
            out.setdefault(agent, []).append(open_.pop(agent))
            starts.setdefault(agent, []).append(i)
    for agent, batch in open_.items():  # delivered, its turn not started (a fork's point between them)
        out.setdefault(agent, []).append(batch)
    return out, starts


def _unredacted(value: Any, key: str = "") -> Any:
    """The recorded config with what the lake redacted (secret-looking keys: ``secrets``, ``api_key_env``)
    emptied: a replay needs none of it; a fork that calls a model sets it again (``--set``)."""
    if value == REDACTED:
        return {} if key == "secrets" else None
    if isinstance(value, dict):
        return {k: _unredacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_unredacted(v, key) for v in value]
    return value


def _call_ids(rows: list[Row]) -> dict[str, list[str]]:
    """Tool call ids by the ``llm.response`` that asked for them (from ``tool.call``: for v1 records)."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.type == "tool.call" and row.parent_event_id:
            ids = out.setdefault(row.parent_event_id, [])
            if row.data.get("id") not in ids:
                ids.append(str(row.data.get("id")))
    return out


def _response(row: Row, ids: list[str]) -> LLMResponse:
    calls = []
    for n, c in enumerate(row.data.get("tool_calls") or []):
        call_id = c.get("id") or (ids[n] if n < len(ids) else f"call_{row.event_id}_{n}")
        calls.append(ToolCall(id=call_id, name=c["name"], arguments=c.get("arguments") or "{}"))
    return LLMResponse(text=row.data.get("text") or "", tool_calls=calls, model=row.model or "",
                       finish_reason=row.data.get("finish_reason"), profile=row.data.get("profile"),
                       usage=Usage(tokens_in=row.tokens_in or 0, tokens_out=row.tokens_out or 0))


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_rows(lake: str | Path, session_id: str) -> list[Row]:
    """A session's events in the order they happened (time, then each producer's sequence)."""
    table = query(lake, f"select {COLUMNS} from events where session_id = {_sql_str(session_id)} order by ts, seq")
    rows = []
    for r in table.to_pylist():
        payload = r.pop("payload") or "{}"
        rows.append(Row(**{k: v for k, v in r.items() if v is not None}, data=json.loads(payload)))
    return rows


def load_record(lake: str | Path, session_id: str) -> SessionRecord:
    """The record of ``session_id`` in ``lake``; a clear error for an unknown session."""
    rows = read_rows(lake, session_id)
    if not rows:
        raise UnknownSessionError(f"session {session_id!r} has no events in the lake {lake} "
                                  "(troupe events sql \"select distinct session_id from events\" lists them)",
                                  session=session_id)
    return record_from_rows(session_id, rows)


def record_from_rows(session_id: str, rows: list[Row]) -> SessionRecord:
    """The record of a session whose events (in order) are ``rows``."""
    record = SessionRecord(session_id=session_id, rows=rows)
    for row in rows:
        data = row.data
        if row.type == "session.started" and not record.input:
            record.input, record.config = str(data.get("input") or ""), data.get("config")
            record.conversation = bool(data.get("conversation"))
        elif row.type == "turn.finished" and data.get("turn") and data.get("input") is not None:
            record.turn_inputs[int(data["turn"])] = str(data["input"])
        elif row.type == "session.finished":
            record.reply, record.status = data.get("reply"), row.status
        if data.get("truncated") is True:
            record.truncated = True
    return record


__all__ = ["COLUMNS", "RecordTooOldError", "Row", "SessionRecord", "UnknownSessionError", "load_record", "read_rows",
           "record_from_rows"]
