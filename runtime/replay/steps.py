"""Named fork points: the steps a fork (``troupe fork --at``, ``troupe eval run --fork-at``) may name,
defined here once, each resolved against a session's record.

==========================  ==============================================================================
step                        where the fork leaves the record
==========================  ==============================================================================
``after-first-tool-result``  right after the session's first tool result (or tool error): the model call
                            that reads it, and everything after, run live
``after-tool-result:N``     right after the N-th tool result of the session (counted from 1, each call id once)
``before-llm:N``            just before the N-th model call of the session (from 1): calls 1..N-1 are replayed
``turn:N``                  at user turn N (from 1): the turns before it are replayed, turn N runs live
                            (``turn:1`` replays nothing; a conversation may name the turn after its last)
``event:ID`` or ``ID``      right after that event of the session (one session's event: single samples)
==========================  ==============================================================================

A fork's ``fork_point`` (in its ``session.started``) is the step's canonical label:
``after-tool-result:1``, ``before-llm:3``, ``turn:2``, ``event:<id>``.

Counts follow the record's order (time, then each producer's sequence), all agents together. A step
a session never reached (fewer tool results or model calls, fewer turns) raises
:class:`StepNotReachedError`; :func:`parse_step` rejects a malformed step before any record is read.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from troupe.runtime.errors import ConfigError
from troupe.runtime.replay.fork import ForkPoint
from troupe.runtime.replay.record import Row, SessionRecord

StepKind = Literal["after-tool-result", "before-llm", "turn", "event"]

NAMED = ("after-first-tool-result", "after-tool-result:N", "before-llm:N", "turn:N", "event:ID")
"""The step forms, as the help texts and errors list them."""

_COUNTED = re.compile(r"^(after-tool-result|before-llm|turn):(\d+)$")
_LOOKS_NAMED = re.compile(r"^(after|before|turn|event)\b")
"""A mistyped step (event ids look like ``e-…``: a letter, a dash, hex)."""


class StepError(ConfigError):
    """A fork step that is not one of :data:`NAMED`."""


class StepNotReachedError(ConfigError):
    """The session never reached the step (it had fewer tool results, model calls or turns)."""


class ForkStep(BaseModel):
    """A parsed fork step: its kind and its number (or event id)."""

    kind: StepKind
    n: int = 0
    event_id: str = ""

    @property
    def label(self) -> str:
        """The step as written canonically (``after-tool-result:1`` for ``after-first-tool-result``)."""
        return f"event:{self.event_id}" if self.kind == "event" else f"{self.kind}:{self.n}"

    @property
    def one_session(self) -> bool:
        """An event id: it names a point of one session only."""
        return self.kind == "event"


def parse_step(text: str | int) -> ForkStep:
    """``after-first-tool-result``, ``after-tool-result:N``, ``before-llm:N``, ``turn:N``, ``event:ID``, a
    bare event id, or a bare turn number (``troupe fork --at 2``); anything else is a :class:`StepError`."""
    raw = str(text).strip()
    if raw.isdigit():
        raw = f"turn:{raw}"
    if raw == "after-first-tool-result":
        return ForkStep(kind="after-tool-result", n=1)
    if raw.startswith("event:") and len(raw) > len("event:"):
        return ForkStep(kind="event", event_id=raw.removeprefix("event:"))
    if (m := _COUNTED.match(raw)) is not None:
        n = int(m.group(2))
        if n < 1:
            raise StepError(f"fork step {raw!r}: steps count from 1")
        kind: StepKind = "after-tool-result" if m.group(1) == "after-tool-result" else \
            "before-llm" if m.group(1) == "before-llm" else "turn"
        return ForkStep(kind=kind, n=n)
    if not raw or _LOOKS_NAMED.match(raw):
        raise StepError(f"unknown fork step {raw!r}: use one of {', '.join(NAMED)} (or an event id)")
    return ForkStep(kind="event", event_id=raw)


def _tool_results(rows: list[Row]) -> list[int]:
    """Indexes of each tool call's first result or error, in order."""
    seen: set[str] = set()
    out = []
    for i, row in enumerate(rows):
        if row.type in ("tool.result", "tool.error") and (call := str(row.data.get("id"))) not in seen:
            seen.add(call)
            out.append(i)
    return out


def _model_calls(rows: list[Row]) -> list[int]:
    """Indexes of each model call's answer (``llm.response``, ``llm.error``), in order; an MCP server's
    sampling request and an answer a resumed turn took from its journal are not calls of their own."""
    return [i for i, row in enumerate(rows)
            if (row.type == "llm.response" and not row.data.get("source") and row.status != "replayed")
            or row.type == "llm.error"]


def _turns(record: SessionRecord) -> int:
    return max([1, *(r.turn or 0 for r in record.rows), *record.turn_inputs])


def resolve_step(record: SessionRecord, step: ForkStep | str | int) -> ForkPoint:
    """Where ``step`` leaves ``record`` (a :class:`ForkPoint`); :class:`StepNotReachedError` when it never got there."""
    step = step if isinstance(step, ForkStep) else parse_step(step)
    sid = record.session_id
    if step.kind == "event":
        return ForkPoint(label=step.label, index=record.index(step.event_id))
    if step.kind == "turn":
        if step.n > _turns(record) + (1 if record.conversation else 0):  # a conversation may go on with a new turn
            raise StepNotReachedError(f"session {sid} never reached {step.label} (it had {_turns(record)} turn(s))",
                                      session=sid, step=step.label)
        before = [i for i, r in enumerate(record.rows) if r.turn is not None and r.turn < step.n]
        return ForkPoint(label=step.label, index=max(before, default=-1), turn=step.n)
    found = _tool_results(record.rows) if step.kind == "after-tool-result" else _model_calls(record.rows)
    what = "tool result(s)" if step.kind == "after-tool-result" else "model call(s)"
    if step.n > len(found):
        raise StepNotReachedError(f"session {sid} never reached {step.label} (it had {len(found)} {what})",
                                  session=sid, step=step.label)
    at = found[step.n - 1]
    return ForkPoint(label=step.label, index=at if step.kind == "after-tool-result" else at - 1)


__all__ = ["NAMED", "ForkStep", "StepError", "StepNotReachedError", "parse_step", "resolve_step"]
