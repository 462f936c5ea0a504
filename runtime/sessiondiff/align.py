"""Aligning two sessions' events, agent by agent, and what follows from the alignment.

Per agent, the events' keys are aligned with :class:`difflib.SequenceMatcher`; inside a block
that differs, events of the same kind (type and tool) are paired again by a second alignment, so a
tool result with another value shows as one ``~`` row rather than a ``-`` and a ``+``.

Concurrent work finishes in either order (two tool calls of one turn, a delegated task's events
around its parent's next call), so the same event can sit at another place in the other run. An
event only in A and an event only in B with the same key, at most :data:`MOVE_WINDOW` rows apart,
are one ``=`` row marked ``moved`` (at A's place), not a divergence.

The **first divergence** is found in each session's own order (time, then per-producer seq): the
first event on each side that is not part of an ``=`` row. Of the two, the one preceded by fewer
matched events is the first divergence (timing differences between the two runs do not move it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from typing import Any

from troupe.runtime.sessiondiff.model import (
    AgentDelta,
    EventView,
    Op,
    ReplyDiff,
    SessionDiff,
    SideInfo,
    Step,
    ToolCallDiff,
    ToolCallView,
    Usage,
)

Row = tuple[Op, EventView | None, EventView | None, bool]
"""An aligned row: op, A's event, B's event, whether the pair was found in another order (moved)."""
OUTCOMES = ("tool.result", "tool.error", "guardrail.denied")
MOVE_WINDOW = 12
"""How far apart (in aligned rows) an event only in A and its twin only in B may be to count as moved."""


def _kind(e: EventView) -> tuple[str, str]:
    return (e.type, e.tool or "")


def _pair_block(a: Sequence[EventView], b: Sequence[EventView]) -> list[Row]:
    """A differing block: events with their twin in the block are ``=`` (moved: see :func:`settle_moves`),
    same-kind events paired as ``~``, the rest ``-`` then ``+``."""
    out: list[Row] = []
    rest_b = list(b)
    rest_a: list[EventView] = []
    for e in a:
        twin = next((x for x in rest_b if x.key == e.key), None)
        if twin is None:
            rest_a.append(e)
        else:
            rest_b.remove(twin)
            out.append(("=", e, twin, True))
    a, b = rest_a, rest_b
    sm = SequenceMatcher(None, [_kind(e) for e in a], [_kind(e) for e in b], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out += [("~", a[i], b[j], False) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        out += [("-", e, None, False) for e in a[i1:i2]]
        out += [("+", None, e, False) for e in b[j1:j2]]
    return out


def align(a: Sequence[EventView], b: Sequence[EventView]) -> list[Row]:
    """One agent's events on both sides, aligned (before :func:`settle_moves`)."""
    out: list[Row] = []
    sm = SequenceMatcher(None, [e.key for e in a], [e.key for e in b], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out += [("=", a[i], b[j], False) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        elif tag == "delete":
            out += [("-", e, None, False) for e in a[i1:i2]]
        elif tag == "insert":
            out += [("+", None, e, False) for e in b[j1:j2]]
        else:
            out += _pair_block(a[i1:i2], b[j1:j2])
    return out


def settle_moves(aligned: Sequence[Row]) -> list[Row]:
    """The rows with each ``-``/``+`` twin (same key, near each other) made one ``=`` row marked moved."""
    rows = list(aligned)
    dropped: set[int] = set()
    for i, (op, x, _, _) in enumerate(rows):
        if op != "-" or x is None:
            continue
        for j in range(max(i - MOVE_WINDOW, 0), min(i + MOVE_WINDOW + 1, len(rows))):
            other = rows[j]
            if j not in dropped and other[0] == "+" and other[2] is not None and other[2].key == x.key:
                rows[i] = ("=", x, other[2], True)
                dropped.add(j)
                break
    return [r for k, r in enumerate(rows) if k not in dropped]


def changed_fields(a: EventView, b: EventView) -> list[str]:
    keys = list(dict.fromkeys([*a.field_keys, *b.field_keys]))
    return [k for k in keys if a.field_keys.get(k) != b.field_keys.get(k)]


def usage(events: Iterable[EventView]) -> Usage:
    u = Usage()
    for e in events:
        u.events += 1
        if e.type == "llm.response":
            u.llm_calls += 1
            u.tokens_in += e.tokens_in or 0
            u.tokens_out += e.tokens_out or 0
            u.llm_ms += e.duration_ms or 0.0
        elif e.type == "tool.call":
            u.tool_calls += 1
        elif e.type in ("tool.result", "tool.error"):
            u.tool_ms += e.duration_ms or 0.0
    u.llm_ms, u.tool_ms = round(u.llm_ms, 3), round(u.tool_ms, 3)
    return u


def _minus(b: Usage | None, a: Usage | None) -> Usage:
    a, b = a or Usage(), b or Usage()
    values: dict[str, Any] = {k: getattr(b, k) - getattr(a, k) for k in Usage.model_fields}
    values["llm_ms"], values["tool_ms"] = round(values["llm_ms"], 3), round(values["tool_ms"], 3)
    return Usage(**values)


def _by_agent(events: Sequence[EventView]) -> dict[str, list[EventView]]:
    out: dict[str, list[EventView]] = {}
    for e in events:
        out.setdefault(e.agent, []).append(e)
    return out


def tool_calls(events: Sequence[EventView]) -> list[ToolCallView]:
    """One agent's tool calls in call order, each with its outcome (matched by call id)."""
    outcomes: dict[str | None, EventView] = {e.call_id: e for e in events if e.type in OUTCOMES and e.call_id}
    views = []
    for e in events:
        if e.type != "tool.call":
            continue
        out = outcomes.get(e.call_id)
        views.append(ToolCallView(
            call_id=e.call_id, tool=e.tool, arguments=e.detail.get("arguments"), event_id=e.event_id,
            result=(out.detail.get("result") or out.detail.get("error")) if out else None,
            outcome=out.type if out else None, duration_ms=out.duration_ms if out else None,
        ))
    return views


def _call_keys(events: Sequence[EventView]) -> dict[str | None, tuple[str, ...]]:
    outcomes: dict[str | None, EventView] = {e.call_id: e for e in events if e.type in OUTCOMES and e.call_id}
    keys: dict[str | None, tuple[str, ...]] = {}
    for e in events:
        if e.type == "tool.call":
            out = outcomes.get(e.call_id)
            keys[e.call_id] = (e.tool or "", e.field_keys.get("arguments", ""),
                               out.field_keys.get("result", "") if out else "", out.type if out else "")
    return keys


def tool_call_diffs(agent: str, a: Sequence[EventView], b: Sequence[EventView]) -> list[ToolCallDiff]:
    """The agent's tool calls that differ between the sides."""
    va, vb = tool_calls(a), tool_calls(b)
    ka, kb = _call_keys(a), _call_keys(b)
    sa, sb = [ka[v.call_id] for v in va], [kb[v.call_id] for v in vb]
    out: list[ToolCallDiff] = []
    names = ("tool", "arguments", "result", "outcome")
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, sa, sb, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        n = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(n):
            x, y = sa[i1 + k], sb[j1 + k]
            out.append(ToolCallDiff(agent=agent, kind="changed", a=va[i1 + k], b=vb[j1 + k],
                                    fields=[f for f, p, q in zip(names, x, y, strict=True) if p != q]))
        out += [ToolCallDiff(agent=agent, kind="only_a", a=v) for v in va[i1 + n:i2]]
        out += [ToolCallDiff(agent=agent, kind="only_b", b=v) for v in vb[j1 + n:j2]]
    return out


def first_divergence(steps: Sequence[Step], a: Sequence[EventView], b: Sequence[EventView]) -> Step | None:
    """The first step, in either session's own order, that is not ``=`` (see the module doc)."""
    where: dict[str, Step] = {}
    for s in steps:
        for v in (s.a, s.b):
            if v is not None:
                where[v.event_id] = s
    found: list[tuple[int, int, Step]] = []
    for side, events in enumerate((a, b)):
        for rank, e in enumerate(events):
            step = where[e.event_id]
            if step.op != "=":
                found.append((rank, side, step))
                break
    return min(found, key=lambda t: (t[0], t[1]))[2] if found else None


def build_diff(info_a: SideInfo, events_a: Sequence[EventView], info_b: SideInfo,
               events_b: Sequence[EventView]) -> SessionDiff:
    """The diff of two loaded sessions."""
    by_a, by_b = _by_agent(events_a), _by_agent(events_b)
    agents = list(dict.fromkeys([*by_a, *by_b]))
    steps: list[Step] = []
    deltas: list[AgentDelta] = []
    calls: list[ToolCallDiff] = []
    for agent in agents:
        ea, eb = by_a.get(agent, []), by_b.get(agent, [])
        pairs = settle_moves(align(ea, eb))
        for i, (op, x, y, moved) in enumerate(pairs):
            steps.append(Step(agent=agent, index=i, op=op, a=x, b=y, moved=moved,
                              changed=changed_fields(x, y) if op == "~" and x and y else []))
        ua, ub = (usage(ea) if agent in by_a else None), (usage(eb) if agent in by_b else None)
        ops = [p[0] for p in pairs]
        deltas.append(AgentDelta(agent=agent, a=ua, b=ub, delta=_minus(ub, ua), same=ops.count("="),
                                 changed=ops.count("~"), only_a=ops.count("-"), only_b=ops.count("+")))
        calls += tool_call_diffs(agent, ea, eb)
    ta, tb = usage(events_a), usage(events_b)
    total = AgentDelta(agent="*", a=ta, b=tb, delta=_minus(tb, ta), same=sum(d.same for d in deltas),
                       changed=sum(d.changed for d in deltas), only_a=sum(d.only_a for d in deltas),
                       only_b=sum(d.only_b for d in deltas))
    replies = ReplyDiff(same=info_a.reply == info_b.reply, status_same=info_a.status == info_b.status,
                        turns_same=info_a.turn_replies == info_b.turn_replies, a=info_a.reply, b=info_b.reply)
    first = first_divergence(steps, events_a, events_b)
    identical = first is None and replies.same and replies.status_same and replies.turns_same
    return SessionDiff(a=info_a, b=info_b, same_team=info_a.team == info_b.team, identical=identical,
                       first_divergence=first, agents=deltas, steps=steps, tool_calls=calls, replies=replies,
                       total=total)


__all__ = ["MOVE_WINDOW", "align", "build_diff", "changed_fields", "first_divergence", "settle_moves", "tool_call_diffs", "tool_calls", "usage"]
