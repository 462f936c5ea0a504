"""What a fork changes: its point in the parent's record, ``--set`` edits of the team config, a
replaced tool result, and the plan that replays the record up to the point (then goes on live)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from troupe.runtime.agent.recorded import OVERRIDE, AgentRecording, RecordedResult, ReplayPlan
from troupe.runtime.errors import ConfigError
from troupe.runtime.replay.record import Row, SessionRecord


class ForkPoint(BaseModel):
    """Where a fork leaves its parent's record: after event ``index`` (-1: before everything)."""

    label: str
    """``event:<id>``, ``turn:<n>``, ``tool:<call id>`` or a named step (``after-tool-result:1``, ``before-llm:3``:
    :mod:`troupe.runtime.replay.steps`); the ``fork_point`` of its ``session.started``."""
    index: int
    turn: int | None = None
    """A fork at a user turn: that turn and the later ones run live."""


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, lists, ``null``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``agents.0.instructions``; a list item by index or by its ``id``: ``agents.lead.tools``)
    in ``config``; a path that does not exist is an error."""
    parts = path.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            index = int(part) if part.isdigit() else next((i for i, x in enumerate(node) if isinstance(x, dict)
                                                           and x.get("id") == part), None)
            if index is None or not 0 <= index < len(node):
                raise ConfigError(f"--set {path}: {where} does not exist in the recorded team config", path=path)
            if last:
                node[index] = value
            node = node[index]
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError(f"--set {path}: {where} does not exist in the recorded team config "
                                  f"(there: {', '.join(sorted(node)) or 'nothing'})", path=path)
            if last:
                node[part] = value
            node = node[part]
        else:
            raise ConfigError(f"--set {path}: {'.'.join(parts[:depth])} is a value, not a mapping or list", path=path)


def fork_point(record: SessionRecord, at: str | int | None, tool_results: dict[str, str]) -> ForkPoint:
    """Resolve ``at`` (an event id, or a user turn number) or, without it, the first replaced result."""
    if at is None:
        if not tool_results:
            raise ConfigError("a fork needs a point: at=EVENT_ID or a TURN, or a replaced tool result")
        found = [i for i, r in enumerate(record.rows) if r.type in ("tool.result", "tool.error") and r.data.get("id") in tool_results]
        if not found:
            raise ConfigError(f"no tool result of session {record.session_id} has the call id(s) {sorted(tool_results)}",
                              session=record.session_id)
        row = record.rows[found[0]]
        return ForkPoint(label=f"tool:{row.data.get('id')}", index=found[0])
    if isinstance(at, int) or str(at).isdigit():
        turn = int(at)
        if turn < 1:
            raise ConfigError(f"turn {turn} does not exist: turns count from 1")
        before = [i for i, r in enumerate(record.rows) if r.turn is not None and r.turn < turn]
        return ForkPoint(label=f"turn:{turn}", index=max(before, default=-1), turn=turn)
    return ForkPoint(label=f"event:{at}", index=record.index(str(at)))


def fork_plan(record: SessionRecord, point: ForkPoint, tool_results: dict[str, str]) -> ReplayPlan:
    """Replay the record up to ``point`` (the tool calls a replayed answer asked for keep their recorded
    results), then live; ``tool_results`` replace recorded results by call id."""
    asked_by = {r.data.get("id"): r.parent_event_id for r in record.rows if r.type == "tool.call"}
    position = {r.event_id: i for i, r in enumerate(record.rows)}

    def keep(index: int, row: Row) -> bool:
        if row.type in ("tool.result", "tool.error", "approval.decided"):  # as the answer that asked for the call
            parent = asked_by.get(row.data.get("call_id" if row.type == "approval.decided" else "id"))
            return position.get(parent or "", index) <= point.index
        return index <= point.index

    agents = record.recordings(keep)
    ids = {r.data.get("id"): (r.agent or "") for r in record.rows if r.type in ("tool.result", "tool.error", "tool.call")}
    for call_id, text in tool_results.items():
        if call_id not in ids:
            raise ConfigError(f"no tool call {call_id!r} in session {record.session_id}", session=record.session_id)
        rec = agents.setdefault(ids[call_id], AgentRecording())
        rec.results[call_id] = RecordedResult(ok=True, content=text, event_id=OVERRIDE)
    for rec in agents.values():
        rec.live_after = len(rec.calls)
    return ReplayPlan(source=record.session_id, agents=agents, live=True)


__all__ = ["ForkPoint", "fork_plan", "fork_point", "parse_value", "set_path"]
