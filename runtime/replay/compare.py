"""Did a replay take its record's path? Each agent's steps (model answers, tool calls and results,
messages) must come in the same order; the session's services' changes (tasks, blackboard) and its
turns must be the same, in any order (agents run concurrently). Ids and times are masked."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pydantic import BaseModel

from troupe.runtime.agent.recorded import masked
from troupe.runtime.replay.record import Row

SERVICES = frozenset({"session", "tasks", "blackboard", "supervisor"})
"""Producers whose steps are compared as a multiset (their order follows the agents' interleaving)."""


class Step(BaseModel):
    """One compared event: who, what, and the fields that must match."""

    agent: str
    type: str
    key: dict[str, Any]
    event_id: str
    turn: int | None = None

    def same(self, other: Step) -> bool:
        return self.type == other.type and self.key == other.key


class Divergence(BaseModel):
    """The first event where a replay left its record."""

    agent: str
    """The agent (or service) whose steps differ."""
    index: int
    """The position in that agent's compared steps (from 0)."""
    recorded: Step | None
    """The recorded step (``None``: the replay did more than the record)."""
    replayed: Step | None
    """The replayed step (``None``: the replay stopped short)."""
    reason: str

    def describe(self) -> str:
        def one(step: Step | None) -> str:
            return "nothing" if step is None else f"{step.type} {json.dumps(step.key, ensure_ascii=False)[:300]} ({step.event_id})"

        return f"{self.agent} step {self.index}: recorded {one(self.recorded)}; replayed {one(self.replayed)}"


def _m(value: Any) -> Any:
    if isinstance(value, str):
        return masked(value)
    if isinstance(value, list):
        return [_m(v) for v in value]
    if isinstance(value, dict):
        return {k: _m(v) for k, v in value.items()}
    return value


def _key(row: Row) -> dict[str, Any] | None:
    d = row.data
    match row.type:
        case "llm.response" if not d.get("source"):
            return {"text": d.get("text") or "", "calls": [[c.get("name"), c.get("arguments")] for c in d.get("tool_calls") or []]}
        case "llm.error":
            return {"reason": d.get("reason")}
        case "tool.call":
            return {"tool": row.tool, "arguments": d.get("arguments")}
        case "tool.result" | "tool.error":
            return {"tool": row.tool, "result": d.get("result"), "error_type": d.get("error_type")}
        case "message.sent":
            return {"to": d.get("to"), "topic": d.get("topic"), "kind": d.get("kind"), "content": d.get("content")}
        case "approval.decided":
            return {"tool": row.tool, "approved": d.get("approved"), "by": d.get("by"), "reason": d.get("reason")}
        case "task.created":
            return {"task": row.task_id, "goal": d.get("goal"), "assignee": d.get("assignee"), "input": d.get("input")}
        case "task.status":
            return {"task": row.task_id, "to": d.get("to"), "output": d.get("output"), "error": d.get("error")}
        case "blackboard.put":
            return {"key": d.get("key"), "kind": d.get("kind"), "author": d.get("author"), "value": d.get("value")}
        case "turn.finished":
            return {"turn": d.get("turn"), "input": d.get("input"), "reply": d.get("reply")}
        case "session.finished":
            return {"status": row.status, "reply": d.get("reply")}
    return None


def _dedup(row: Row) -> tuple[str, ...] | None:
    """What makes a row a repeat of an earlier one in a resumed record (a turn replayed after a crash)."""
    d = row.data
    match row.type:
        case "tool.call" | "tool.result" | "tool.error" | "message.sent":
            return (row.type, str(row.agent), str(d.get("id")))
        case "approval.decided":
            return (row.type, str(row.agent), str(d.get("call_id")))
        case "task.created":
            return (row.type, str(row.task_id))
        case "task.status":
            return (row.type, str(row.task_id), str(d.get("to")))
        case "blackboard.put":
            return (row.type, str(d.get("key")), str(d.get("version")))
    return None


def steps(rows: list[Row]) -> dict[str, list[Step]]:
    """The compared steps of a record, by agent (services included), in order."""
    out: dict[str, list[Step]] = {}
    seen: set[tuple[str, ...]] = set()
    answers: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = _key(row)
        if key is None:
            continue
        agent = row.agent or ""
        if row.type == "llm.response" and row.status == "replayed" and key in answers.get(agent, []):
            continue
        if (dedup := _dedup(row)) is not None:
            if dedup in seen:
                continue
            seen.add(dedup)
        if row.type == "llm.response":
            answers.setdefault(agent, []).append(key)
        out.setdefault(agent, []).append(Step(agent=agent, type=row.type, key=_m(key), event_id=row.event_id, turn=row.turn))
    return {agent: _rounds_sorted(ss) for agent, ss in out.items()}


def _rounds_sorted(agent_steps: list[Step]) -> list[Step]:
    """An agent's steps with each round's (what follows one model answer up to the next) in a canonical
    order: a round's tool calls run concurrently, so their events interleave differently each run."""
    out: list[Step] = []
    block: list[Step] = []
    for step in agent_steps:
        if step.type in ("llm.response", "llm.error"):
            out.extend(sorted(block, key=_canon))
            block = []
            out.append(step)
        else:
            block.append(step)
    out.extend(sorted(block, key=_canon))
    return out


def first_divergence(recorded: list[Row], replayed: list[Row]) -> Divergence | None:
    """The earliest (in the record's order) step where ``replayed`` differs from ``recorded``."""
    a, b = steps(recorded), steps(replayed)
    order = {row.event_id: i for i, row in enumerate(recorded)}
    found: list[tuple[int, Divergence]] = []
    for agent in sorted(set(a) | set(b)):
        mine, theirs = a.get(agent, []), b.get(agent, [])
        div = _unordered(agent, mine, theirs) if agent in SERVICES else _ordered(agent, mine, theirs)
        if div is not None:
            at = order.get(div.recorded.event_id, len(order)) if div.recorded is not None else len(order)
            found.append((at, div))
    return min(found, key=lambda f: f[0])[1] if found else None


def _ordered(agent: str, mine: list[Step], theirs: list[Step]) -> Divergence | None:
    for i in range(max(len(mine), len(theirs))):
        r = mine[i] if i < len(mine) else None
        p = theirs[i] if i < len(theirs) else None
        if r is None or p is None or not r.same(p):
            why = "the replay stopped short" if p is None else "the replay did more" if r is None else "a different step"
            return Divergence(agent=agent, index=i, recorded=r, replayed=p, reason=why)
    return None


def _canon(step: Step) -> str:
    return json.dumps([step.type, step.key], sort_keys=True, default=str)


def _unordered(agent: str, mine: list[Step], theirs: list[Step]) -> Divergence | None:
    missing = Counter(map(_canon, mine)) - Counter(map(_canon, theirs))
    extra = Counter(map(_canon, theirs)) - Counter(map(_canon, mine))
    if not missing and not extra:
        return None
    r = next((i, s) for i, s in enumerate(mine) if _canon(s) in missing) if missing else None
    p = next((i, s) for i, s in enumerate(theirs) if _canon(s) in extra) if extra else None
    index = r[0] if r is not None else p[0] if p is not None else 0
    return Divergence(agent=agent, index=index, recorded=r[1] if r else None, replayed=p[1] if p else None,
                      reason=f"{agent}'s changes differ (compared in any order)")


def step_counts(rows: list[Row]) -> dict[str, int]:
    return {agent: len(s) for agent, s in steps(rows).items()}


__all__ = ["Divergence", "Step", "first_divergence", "step_counts", "steps"]
