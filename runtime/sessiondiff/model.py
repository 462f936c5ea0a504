"""The diff of two sessions as data: what :func:`~troupe.runtime.sessiondiff.diff_sessions` returns.

A :class:`SessionDiff` is a pydantic model (``model_dump_json()`` is ``troupe diff --json``), with
the aligned timeline as an Arrow table (:meth:`SessionDiff.table`), a terminal rendering
(:meth:`SessionDiff.text`) and a self-contained HTML page (:meth:`SessionDiff.html`).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

Op = Literal["=", "~", "-", "+"]
"""``=`` the same on both sides, ``~`` the same kind of event with different content, ``-`` only in
A, ``+`` only in B."""


class EventView(BaseModel):
    """One event as a diff sees it."""

    event_id: str
    type: str
    agent: str
    seq: int
    at_ms: float
    """Milliseconds since its session's first event."""
    tool: str | None = None
    status: str | None = None
    task_id: str | None = None
    turn: int | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    duration_ms: float | None = None
    call_id: str | None = None
    """The tool call id of a ``tool.*`` or ``guardrail.denied`` event."""
    key: str
    """Hash of the compared fields (ids and times masked): equal keys mean the same event."""
    summary: str
    detail: dict[str, str] = Field(default_factory=dict)
    """The compared fields, as text cut to 400 characters."""
    field_keys: dict[str, str] = Field(default_factory=dict, exclude=True)
    """A hash of each compared field in full (ids and times masked): which fields of a ``~`` differ."""


class Step(BaseModel):
    """One row of an agent's aligned timeline."""

    agent: str
    index: int
    """Position in the agent's aligned timeline, from 0."""
    op: Op
    a: EventView | None = None
    b: EventView | None = None
    changed: list[str] = Field(default_factory=list)
    """For ``~``: the compared fields that differ."""
    moved: bool = False
    """For ``=``: the same event, at another place in the agent's order on one side (concurrent work
    that finished in another order), so not a divergence."""

    @property
    def at_ms(self) -> float:
        return min(v.at_ms for v in (self.a, self.b) if v is not None)


class Usage(BaseModel):
    """What one agent did in one session."""

    events: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    llm_ms: float = 0.0
    tool_ms: float = 0.0


class AgentDelta(BaseModel):
    """One agent on both sides: its usage, the difference (B - A) and how its timeline aligned."""

    agent: str
    a: Usage | None
    b: Usage | None
    delta: Usage
    same: int = 0
    changed: int = 0
    only_a: int = 0
    only_b: int = 0

    @property
    def identical(self) -> bool:
        return self.changed == self.only_a == self.only_b == 0


class ToolCallView(BaseModel):
    """A tool call with its outcome."""

    call_id: str | None
    tool: str | None
    arguments: str | None = None
    result: str | None = None
    outcome: str | None = None
    """``tool.result``, ``tool.error``, ``guardrail.denied``, or null when it never finished."""
    duration_ms: float | None = None
    event_id: str | None = None


class ToolCallDiff(BaseModel):
    """A tool call that differs: at the same position with other arguments or results (``changed``),
    or only on one side."""

    agent: str
    kind: Literal["changed", "only_a", "only_b"]
    a: ToolCallView | None = None
    b: ToolCallView | None = None
    fields: list[str] = Field(default_factory=list)
    """For ``changed``: ``tool``, ``arguments``, ``result`` and/or ``outcome``."""


class SideInfo(BaseModel):
    """One of the two sessions."""

    session_id: str
    run_id: str
    team: str | None = None
    input: str | None = None
    entry: str | None = None
    placement: str | None = None
    started_at: str
    status: str | None = None
    reply: str | None = None
    error: str | None = None
    duration_ms: float | None = None
    turn_replies: list[str | None] = Field(default_factory=list)
    events: int = 0
    replay_of: str | None = None
    forked_from: str | None = None
    fork_point: str | None = None


class ReplyDiff(BaseModel):
    """The final replies (and each conversation turn's reply) compared."""

    same: bool
    status_same: bool
    turns_same: bool
    a: str | None
    b: str | None


TABLE_SCHEMA = pa.schema([
    ("agent", pa.string()), ("index", pa.int64()), ("op", pa.string()), ("first_divergence", pa.bool_()),
    ("changed", pa.list_(pa.string())), ("moved", pa.bool_()),
    ("a_event_id", pa.string()), ("a_type", pa.string()), ("a_tool", pa.string()), ("a_at_ms", pa.float64()),
    ("a_summary", pa.string()), ("a_tokens_in", pa.int64()), ("a_tokens_out", pa.int64()), ("a_duration_ms", pa.float64()),
    ("b_event_id", pa.string()), ("b_type", pa.string()), ("b_tool", pa.string()), ("b_at_ms", pa.float64()),
    ("b_summary", pa.string()), ("b_tokens_in", pa.int64()), ("b_tokens_out", pa.int64()), ("b_duration_ms", pa.float64()),
])
"""Columns of :meth:`SessionDiff.table`: one row per aligned step."""


def _side(v: EventView | None, p: str) -> dict[str, Any]:
    names = ("event_id", "type", "tool", "at_ms", "summary", "tokens_in", "tokens_out", "duration_ms")
    return {f"{p}_{n}": (getattr(v, n) if v is not None else None) for n in names}


class SessionDiff(BaseModel):
    """Two sessions side by side. ``identical``: every compared event and the replies are the same."""

    a: SideInfo
    b: SideInfo
    same_team: bool
    identical: bool
    first_divergence: Step | None
    agents: list[AgentDelta]
    steps: list[Step]
    """Every agent's aligned timeline, agent after agent (in order of first appearance)."""
    tool_calls: list[ToolCallDiff]
    replies: ReplyDiff
    total: AgentDelta
    """All agents together (``agent`` is ``*``)."""

    def table(self) -> pa.Table:
        """The aligned timeline as an Arrow table (``duckdb.sql("select * from t")`` queries it)."""
        first = self.first_divergence
        rows = [
            {"agent": s.agent, "index": s.index, "op": s.op, "changed": s.changed, "moved": s.moved,
             "first_divergence": first is not None and (s.agent, s.index) == (first.agent, first.index),
             **_side(s.a, "a"), **_side(s.b, "b")}
            for s in self.steps
        ]
        return pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)

    def text(self, *, width: int = 150, timeline: bool = True, full: bool = False) -> str:
        """A terminal rendering: header, per-agent table, first divergence, aligned timelines (long runs
        of equal events collapsed unless ``full``)."""
        from troupe.runtime.sessiondiff.text import render_text

        return render_text(self, width=width, timeline=timeline, full=full)

    def html(self) -> str:
        """A self-contained HTML page (inline CSS, no scripts or links): the two sides in aligned columns."""
        from troupe.runtime.sessiondiff.html import render_html

        return render_html(self)


__all__ = ["TABLE_SCHEMA", "AgentDelta", "EventView", "Op", "ReplyDiff", "SessionDiff", "SideInfo", "Step",
           "ToolCallDiff", "ToolCallView", "Usage"]
