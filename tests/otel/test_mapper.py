"""The mapping of a session's events to spans: one trace, the parent/child tree, GenAI attributes,
token sums equal to the lake's, no contents unless asked, and redaction when asked."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.otel.support import PLANTED, REGISTERED, Recorded, record_demo
from troupe.runtime.events import Event
from troupe.runtime.otel import SpanRecord, session_spans, span_id_for, token_totals, trace_id_for
from troupe.runtime.otel.attributes import ContentPolicy

CONTENT_KEYS = {"troupe.input", "troupe.reply", "troupe.input.last_message", "gen_ai.output.messages",
                "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "troupe.content", "troupe.goal",
                "troupe.output", "troupe.value", "troupe.provenance"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    import asyncio

    return asyncio.run(record_demo(tmp_path_factory.mktemp("otel-lake")))


def _dump(spans: list[SpanRecord]) -> str:
    return json.dumps([{"name": s.name, "attributes": s.attributes, "status": s.status_message,
                        "events": [{"name": e.name, "attributes": e.attributes} for e in s.events]} for s in spans],
                      default=str)


def _by_name(spans: list[SpanRecord], name: str) -> list[SpanRecord]:
    return [s for s in spans if s.name == name]


def test_one_trace_per_session_with_the_agents_tree(recorded: Recorded) -> None:
    spans = session_spans(recorded.events)
    ids = {s.span_id for s in spans}
    assert len(ids) == len(spans)
    assert {s.trace_id for s in spans} == {trace_id_for(recorded.session_id)}
    roots = [s for s in spans if s.parent_id is None]
    assert [r.name for r in roots] == ["invoke_agent demo"]
    root = roots[0]
    assert root.span_id == span_id_for(recorded.session_id, "session")
    assert all(s.parent_id in ids for s in spans if s is not root)

    (lead,) = _by_name(spans, "invoke_agent lead")
    (math,) = _by_name(spans, "invoke_agent math")
    (clock,) = _by_name(spans, "invoke_agent clock")
    (assign,) = _by_name(spans, "execute_tool assign_tasks")
    assert lead.parent_id == root.span_id                       # the user's message
    assert assign.parent_id == lead.span_id
    assert math.parent_id == clock.parent_id == assign.span_id  # the tool call that created their tasks
    for turn, tools in ((lead, {"assign_tasks"}), (math, {"calculator"}), (clock, {"convert_time"})):
        children = [s for s in spans if s.parent_id == turn.span_id]
        assert {s.attributes["gen_ai.tool.name"] for s in children if s.operation == "execute_tool"} == tools
        chats = [s for s in children if s.operation == "chat"]
        assert len(chats) == 2 and all(s.kind == "client" for s in chats)
        assert turn.start_ns <= min(s.start_ns for s in children) <= max(s.end_ns for s in children) <= turn.end_ns
    assert root.start_ns <= lead.start_ns and lead.end_ns <= root.end_ns

    assert len([s for s in spans if s.operation == "chat"]) == recorded.count("llm.response")
    assert len([s for s in spans if s.operation == "execute_tool"]) == recorded.count("tool.call")


def test_genai_attributes_and_session_ids(recorded: Recorded) -> None:
    spans = session_spans(recorded.events)
    for span in spans:
        assert span.attributes["troupe.session_id"] == recorded.session_id
        assert span.attributes["troupe.run_id"] == recorded.run_id
        assert span.attributes["troupe.team"] == "demo"
        assert span.attributes["gen_ai.conversation.id"] == recorded.session_id
        assert span.operation in {"invoke_agent", "chat", "execute_tool"}
    root = next(s for s in spans if s.parent_id is None)
    assert root.attributes["gen_ai.agent.name"] == "demo" and root.attributes["troupe.status"] == "completed"
    assert root.attributes["troupe.usage.llm_calls"] == 6 and root.attributes["troupe.usage.tool_calls"] == 3
    first_chat = min((s for s in spans if s.attributes.get("gen_ai.agent.name") == "lead" and s.operation == "chat"),
                     key=lambda s: s.start_ns)
    assert first_chat.name == "chat scripted"
    assert first_chat.attributes["gen_ai.request.model"] == "scripted"
    assert first_chat.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first_chat.attributes["troupe.tool_calls"] == ["assign_tasks"]
    calc = _by_name(spans, "execute_tool calculator")[0]
    assert calc.attributes["gen_ai.tool.call.id"] and calc.attributes["troupe.status"] == "ok"
    assert calc.end_ns > calc.start_ns
    math = _by_name(spans, "invoke_agent math")[0]
    assert math.attributes["troupe.task_id"].startswith("t-")
    assert [e.name for e in math.events] == ["troupe.message.delivered", "troupe.blackboard.put", "troupe.task.status"]
    assert {"troupe.task.created"} == {e.name for e in _by_name(spans, "execute_tool assign_tasks")[0].events}


def test_token_counts_equal_the_lakes(recorded: Recorded) -> None:
    spans = session_spans(recorded.events)
    tokens = token_totals(spans)
    assert tokens == recorded.lake_tokens()
    assert tokens[0] > 0 and tokens[1] > 0
    finished = next(e for e in recorded.events if e.type == "session.finished")
    assert sum(tokens) == finished.data["usage"]["tokens"]


def test_no_contents_by_default(recorded: Recorded) -> None:
    spans = session_spans(recorded.events)
    keys = {k for s in spans for k in s.attributes} | {k for s in spans for e in s.events for k in e.attributes}
    assert not keys & CONTENT_KEYS
    text = _dump(spans)
    for secret_or_content in (PLANTED, REGISTERED, "7006652", "17:30", "1234 * 5678", "[redacted]"):
        assert secret_or_content not in text


def test_contents_when_opted_in_are_redacted(recorded: Recorded) -> None:
    spans = session_spans(recorded.events, capture_content=True)
    root = next(s for s in spans if s.parent_id is None)
    assert "1234 * 5678" in str(root.attributes["troupe.input"]) and "[redacted]" in str(root.attributes["troupe.input"])
    assert "7006652" in str(root.attributes["troupe.reply"])
    calc = _by_name(spans, "execute_tool calculator")[0]
    assert calc.attributes["gen_ai.tool.call.result"] == "7006652"
    assert json.loads(str(calc.attributes["gen_ai.tool.call.arguments"])) == {"expression": "1234 * 5678"}
    text = _dump(spans)
    assert PLANTED not in text and REGISTERED not in text and "sk-troupe" not in text


def test_redaction_applies_to_rows_the_lake_did_not_redact() -> None:
    """Contents are redacted again on the way out (a secret registered after its row was written)."""
    late = "late-registered-secret-xyz"
    events = _synthetic([("session.started", "session", {"input": f"use {late} and sk-abcdefghijklmnop", "team": "t",
                                                         "placement": "local", "entry": "a", "budgets": {}})])
    from troupe.runtime.redact import register_secret

    register_secret(late)
    root = session_spans(events, capture_content=True)[0]
    assert late not in str(root.attributes) and "sk-abcdefghijklmnop" not in str(root.attributes)
    assert ContentPolicy(capture=True, max_chars=10).text("x" * 50) == "x" * 9 + "…"


def test_ids_are_deterministic_and_order_independent(recorded: Recorded) -> None:
    first = session_spans(recorded.events)
    shuffled = list(recorded.events)
    random.Random(7).shuffle(shuffled)
    again = session_spans(shuffled)

    def tree(spans: list[SpanRecord]) -> set[tuple[int, int | None, str]]:
        return {(s.span_id, s.parent_id, s.name) for s in spans}

    assert tree(first) == tree(again)


# --- synthetic sessions: errors, missing rows, unfinished sessions -------------------------------
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _synthetic(rows: list[tuple[str, str, dict[str, Any]] | tuple[str, str, dict[str, Any], dict[str, Any]]]
               ) -> list[Event]:
    events = []
    for i, spec in enumerate(rows):
        event_type, agent, payload = spec[0], spec[1], spec[2]
        extra = spec[3] if len(spec) > 3 else {}  # type: ignore[misc]
        events.append(Event(run_id="r-1", session_id="s-1", agent=agent, type=event_type, seq=i,  # type: ignore[arg-type]
                            ts=T0 + timedelta(milliseconds=10 * i), payload=json.dumps(payload), **extra))
    return events


def test_errors_become_error_spans_and_missing_rows_are_tolerated() -> None:
    events = _synthetic([
        ("session.started", "session", {"input": "x", "team": "t", "placement": "local", "entry": "a", "budgets": {}},
         {"status": "running"}),
        ("agent.state", "a", {"from": "idle", "to": "running"}, {"status": "running"}),
        ("llm.request", "a", {"round": 1, "messages": 2, "tools": ["f"], "last": "x"}, {"model": "m"}),
        ("llm.error", "a", {"round": 1, "error": "boom", "type": "ProviderError", "reason": "rate_limit"},
         {"model": "m", "status": "rate_limit", "duration_ms": 5.0}),
        ("tool.call", "a", {"id": "c1", "arguments": "{}"}, {"tool": "f"}),
        ("tool.error", "a", {"id": "c1", "result": "Error: nope", "error_type": "ValueError"},
         {"tool": "f", "status": "error", "duration_ms": 3.0}),
        ("tool.result", "a", {"id": "c2", "result": "ok", "error_type": None, "replayed": True},
         {"tool": "g", "status": "replayed", "duration_ms": 4.0}),
        ("agent.error", "a", {"error": "turn failed", "type": "RunError"}, {"status": "error"}),
        ("agent.state", "a", {"from": "running", "to": "error"}, {"status": "error"}),
        ("agent.state", "b", {"from": "idle", "to": "running"}, {"status": "running"}),
        ("tool.call", "b", {"id": "c3", "arguments": "{}"}, {"tool": "h"}),
    ])
    spans = session_spans(events)
    (chat,) = [s for s in spans if s.operation == "chat"]
    assert chat.status == "error" and chat.attributes["error.type"] == "rate_limit" and chat.status_message == "boom"
    assert chat.end_ns - chat.start_ns == 10_000_000  # from its llm.request
    f = next(s for s in spans if s.name == "execute_tool f")
    assert f.status == "error" and f.attributes["error.type"] == "ValueError"
    g = next(s for s in spans if s.name == "execute_tool g")  # no tool.call row: its duration places it
    assert g.end_ns - g.start_ns == 4_000_000 and g.attributes["troupe.replayed"] is True
    a = next(s for s in spans if s.name == "invoke_agent a")
    assert a.status == "error" and a.status_message == "turn failed"
    h = next(s for s in spans if s.name == "execute_tool h")  # never answered: closed with the session
    assert h.status == "error" and h.status_message == "no result recorded"
    root = spans[0]
    assert root.attributes["troupe.partial"] is True  # no session.finished yet
    assert root.end_ns >= max(s.end_ns for s in spans)
