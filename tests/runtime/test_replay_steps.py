"""Named fork steps (troupe.runtime.replay.steps): parsed once, resolved against a record, a step the
session never reached is an error of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from troupe.runtime.errors import ConfigError
from troupe.runtime.replay.record import Row, SessionRecord
from troupe.runtime.replay.steps import ForkStep, StepError, StepNotReachedError, parse_step, resolve_step

T = datetime(2025, 1, 1, tzinfo=UTC)


def row(event_id: str, type_: str, turn: int | None = 1, **data: Any) -> Row:
    status = data.pop("status", None)
    return Row(event_id=event_id, ts=T, type=type_, turn=turn, agent="a", status=status, data=data)


RECORD = SessionRecord(session_id="s-1", input="hi", rows=[
    row("e0", "session.started", None),
    row("e1", "llm.request"), row("e2", "llm.response", tool_calls=[{"id": "c1", "name": "t"}, {"id": "c2", "name": "t"}]),
    row("e3", "tool.call", id="c1"), row("e4", "tool.call", id="c2"),
    row("e5", "tool.result", id="c2"), row("e6", "tool.error", id="c1"),
    row("e7", "tool.result", id="c1", status="replayed"),  # a resumed turn's journal: the same call again
    row("e8", "llm.request"), row("e9", "llm.response", source="mcp:x"),  # an MCP server's sampling: not a call
    row("e10", "llm.response", text="done"), row("e11", "session.finished", None),
])


@pytest.mark.parametrize(("text", "step"), [
    ("after-first-tool-result", ForkStep(kind="after-tool-result", n=1)),
    ("after-tool-result:2", ForkStep(kind="after-tool-result", n=2)),
    ("before-llm:3", ForkStep(kind="before-llm", n=3)),
    ("turn:2", ForkStep(kind="turn", n=2)), ("2", ForkStep(kind="turn", n=2)), (2, ForkStep(kind="turn", n=2)),
    ("event:e5", ForkStep(kind="event", event_id="e5")), ("e-0123abcd", ForkStep(kind="event", event_id="e-0123abcd")),
])
def test_steps_parse(text: str | int, step: ForkStep) -> None:
    assert parse_step(text) == step


@pytest.mark.parametrize("text", ["after-frist-tool-result", "before-llm:0", "before-llm:x", "turn:", "after-tool-result", ""])
def test_a_malformed_step_is_refused_with_the_forms(text: str) -> None:
    with pytest.raises(StepError, match="after-first-tool-result|count from 1"):
        parse_step(text)


def test_steps_resolve_against_the_record() -> None:
    first = resolve_step(RECORD, "after-first-tool-result")
    assert (first.index, first.label) == (5, "after-tool-result:1")
    assert resolve_step(RECORD, "after-tool-result:2").index == 6  # an error is a result; the journal's repeat is not
    assert resolve_step(RECORD, "before-llm:2").index == 9  # the sampling answer is not a model call of its own
    assert resolve_step(RECORD, "before-llm:1").index == 1
    assert resolve_step(RECORD, "turn:1").index == -1 and resolve_step(RECORD, "turn:1").turn == 1
    assert resolve_step(RECORD, "event:e4").index == 4 and resolve_step(RECORD, "e4").label == "event:e4"


@pytest.mark.parametrize(("text", "why"), [("after-tool-result:3", "it had 2 tool result"),
                                           ("before-llm:3", "it had 2 model call"), ("turn:2", "it had 1 turn")])
def test_a_step_never_reached(text: str, why: str) -> None:
    with pytest.raises(StepNotReachedError, match=why):
        resolve_step(RECORD, text)


def test_an_unknown_event() -> None:
    with pytest.raises(ConfigError, match="is not an event of session s-1"):
        resolve_step(RECORD, "event:e99")
