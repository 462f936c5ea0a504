"""Typed events: one documented, versioned payload model per event type, a registry, the lake schema."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from pydantic import ValidationError

from troupe.runtime.events import (
    ARROW_SCHEMA,
    EVENT_COLUMNS,
    EVENT_TYPES,
    PAYLOAD_MODELS,
    AgentStatePayload,
    Event,
    ListSink,
    Payload,
    TaskStatusPayload,
    ToolCallPayload,
    ToolResultPayload,
    UnknownEventTypeError,
    make_event,
    parse_payload,
    payload_model,
)
from troupe.runtime.events.arrow import arrow_schema, duckdb_type, empty_select
from troupe.runtime.events.payload import VERSION_KEY
from troupe.runtime.events.reference import field_docs
from troupe.runtime.events.registry import any_payload
from troupe.runtime.events.tool import ToolCallPayloadV1

USAGE = {"tokens": 10, "llm_calls": 1, "tool_calls": 0}
EXAMPLES: dict[str, dict[str, Any]] = {
    "session.started": {"input": "hi", "team": "t", "placement": "local", "entry": "lead", "budgets": {"max_tokens": None}},
    "session.finished": {"reply": "done", "error": None, "usage": USAGE},
    "session.resumed": {"usage": USAGE},
    "actor.restored": {"seq": 3, "kind": "agent", "saved_at": "2026-01-01T00:00:00+00:00", "replays_turn": True,
                       "unread": 1, "unsent": 0},
    "turn.finished": {"turn": 2, "input": "and now?", "reply": "done", "usage": USAGE},
    "turn.cancelled": {"turn": 2, "input": "count slowly", "reason": "cancelled by the ACP client", "usage": USAGE},
    "message.sent": {"id": "m1", "to": "b", "topic": None, "kind": "text", "content": "hello"},
    "message.delivered": {"id": "m1", "sender": "a", "kind": "task", "content": "do it", "data": {"task_id": "t-1"}},
    "llm.request": {"round": 1, "messages": 2, "tools": ["add"], "last": "2+3?"},
    "llm.token": {"text": "he"},
    "llm.response": {"round": 1, "text": "", "tool_calls": [{"id": "c1", "name": "add", "arguments": "{}"}],
                     "finish_reason": "tool_calls", "profile": "m"},
    "llm.error": {"round": 2, "error": "HTTP 500", "type": "ProviderError", "reason": "error", "http_status": 500},
    "tool.call": {"id": "c1", "arguments": '{"a": 2}',
                  "risk": {"score": 95, "reasons": ["level L2 +10", "argument to traces to untrusted content +85"],
                           "decision": "deny"}},
    "tool.result": {"id": "c1", "result": "5", "error_type": None},
    "tool.error": {"id": "c1", "result": "[tool error] no", "error_type": "ToolExecutionError", "replayed": True},
    "tool.progress": {"id": "c1", "progress": 0.5, "total": 1.0, "message": "half"},
    "task.created": {"goal": "g", "parent_id": None, "assignee": "a", "input": {"n": 1}},
    "task.status": {"from": "pending", "to": "running", "output": None, "error": None, "assignee": "a", "artifacts": []},
    "blackboard.put": {"key": "k", "version": 1, "kind": "fact", "author": "a", "value": [1], "value_truncated": False,
                       "ttl_s": None, "provenance": None, "taint": ["read_inbox"]},
    "blackboard.expired": {"key": "k", "version": 1, "author": "a", "expires_at": "2026-01-01T00:00:00+00:00"},
    "agent.state": {"from": "idle", "to": "running"},
    "agent.spawned": {"parent": "lead", "tools": ["add"], "model": None},
    "agent.error": {"error": "boom", "type": "RunError"},
    "context.compacted": {"removed_messages": 4, "tokens_before": 900, "tokens_after": 300, "clipped_messages": 0,
                          "reason": "budget"},
    "guardrail.denied": {"id": "c1", "reason": "approval", "error": "no", "approval_id": "s:a1"},
    "approval.requested": {"id": "s:a1", "agent": "a", "tool": "rm", "arguments": "{}", "call_id": "c1", "timeout_s": 5.0},
    "approval.decided": {"id": "s:a1", "approved": False, "by": "timeout", "reason": "late", "call_id": "c1"},
    "budget.exceeded": {"budget": "max_tokens", "limit": 100, "usage": USAGE},
    "environment.opened": {"sample_dir": "/tmp/s/1", "fixture": None, "setup": "m:seed", "servers": ["kv"],
                           "labels": {"case_id": "c1", "sample": "0"}, "error": None},
    "environment.captured": {"sample_dir": "/tmp/s/1", "teardown": "m:capture", "final_state": {"n": 2}, "error": None},
    "workspace.snapshot": {"snapshot": "2-ab12cd34ef", "seq": 2, "reason": "turn 1", "files": 3, "bytes_total": 120,
                           "bytes_new": 40, "folder": "/tmp/ws/s1"},
    "workspace.rollback": {"to": "1-0a1b2c3d4e", "replaced": "3-ffee001122", "snapshot": "4-0a1b2c3d4e", "added": 1,
                           "removed": 2, "changed": 0, "by": "cli", "folder": "/tmp/ws/s1"},
    "memory.written": {"entry_id": "mem-1", "scope": "project", "namespace": "demo", "key": "user/color", "value": "teal",
                       "version": 2, "supersedes": "mem-0", "expires_at": None, "note": "update"},
    "memory.forgotten": {"entry_id": "mem-2", "scope": "project", "namespace": "demo", "key": "user/color",
                         "forgotten": "mem-1"},
    "memory.recalled": {"source": "turn", "query": "what colour?", "entry_ids": ["mem-1"], "tokens": 12, "left_out": 0,
                        "text": "Memory (project demo):\n- user/color: teal", "tainted": []},
    "plan.created": {"plan_id": "p-1", "goal": "sum two numbers", "version": 1, "rationale": "fetch, then add",
                     "steps": [{"id": "a", "description": "fetch a", "assignee": "w1", "depends_on": [], "review": False}]},
    "plan.step": {"plan_id": "p-1", "version": 1, "step_id": "a", "from": "running", "to": "failed", "assignee": "w1",
                  "step_task_id": "p-1.a.1", "attempt": 1, "result": None, "error": "no result within 30s"},
    "plan.revised": {"plan_id": "p-1", "version": 2, "reason": "step a failed", "added": [], "removed": ["b"],
                     "changed": [{"id": "a", "before": {"assignee": "w1"}, "after": {"assignee": "w2"}}], "retried": [],
                     "contradicted": [], "rationale": "w2 has the data"},
    "reflection": {"plan_id": "p-1", "outcome": "done", "lessons": ["assign fetches to w2"], "project": "demo",
                   "remembered": True},
    "access.denied": {"status_code": 403, "error": "other_user_session", "reason": "session s-1 belongs to another user",
                      "method": "GET", "path": "/api/v1/sessions/s-1", "user": "bob", "role": "user",
                      "key_id": "0123456789abcdef", "client": "127.0.0.1", "session": "s-1"},
    "skill.loaded": {"name": "csv-report", "folder": "/team/skills/csv-report", "sha256": "ab" * 32, "call_id": "c1",
                     "chars": 1200, "tokens": 300, "files": 2},
    "knowledge.searched": {"id": "c1", "query": "how to install", "namespaces": ["docs"], "k": 5, "mode": "hybrid",
                           "reranked": False, "hits": [{"namespace": "docs", "document": "docs/install.md",
                                                        "chunk_id": "docs/install.md#0", "score": 0.032}]},
    "elicitation.requested": {"id": "c1:e1", "call_id": "c1", "server": "everything", "mode": "form",
                              "message": "Your name?", "fields": ["name"], "timeout_s": 300.0,
                              "requested_schema": {"type": "object", "properties": {"name": {"type": "string"}}}},
    "elicitation.answered": {"id": "c1:e1", "call_id": "c1", "action": "accept", "by": "client",
                             "content_keys": ["name"], "duration_ms": 812.5},
    "mcp.log": {"server": "everything", "level": "info", "logger": "db", "data": {"rows": 3}, "call_id": "c1"},
    "mcp.subscription": {"server": "everything", "uri": "demo://resource/static/document/a.md", "action": "subscribe",
                         "changed": True, "call_id": "c1"},
    "mcp.resource_updated": {"server": "everything", "uri": "demo://resource/static/document/a.md", "delivered": True},
    "a2a.request": {"url": "http://127.0.0.1:9000", "agent_name": "calc", "call_id": "a1", "text": "add 2 and 3",
                    "context_id": None, "remote_task_id": None, "streaming": True},
    "a2a.update": {"call_id": "a1", "kind": "status", "state": "working", "text": "adding"},
    "a2a.response": {"call_id": "a1", "state": "completed", "text": "5", "context_id": "ctx-1", "remote_task_id": "t-1",
                     "artifacts": ["sum"], "updates": 3},
}


def test_every_event_type_has_exactly_one_payload_model_tagged_with_it() -> None:
    assert list(PAYLOAD_MODELS) == list(EVENT_TYPES) == list(EXAMPLES)
    for type_, model in PAYLOAD_MODELS.items():
        assert payload_model(type_) is model
        assert model.model_fields["event_type"].default == type_
        assert model.payload_version >= 1


def test_every_payload_model_and_field_is_documented() -> None:
    undocumented = [f"{m.__name__}.{name}" for m in [Event, *PAYLOAD_MODELS.values()] for name in m.model_fields
                    if name != "event_type" and not field_docs(m).get(name, "").strip()]
    assert undocumented == []
    assert all((m.__doc__ or "").strip() for m in PAYLOAD_MODELS.values())
    assert field_docs(ToolResultPayload)["replayed"].startswith("True when the result came from the turn's journal")


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_a_payload_round_trips_through_a_row(type_: str) -> None:
    model = payload_model(type_).model_validate(EXAMPLES[type_])
    event = make_event(model, run_id="r", session_id="s", agent="a")
    assert event.type == type_
    version = {VERSION_KEY: model.payload_version} if model.payload_version != 1 else {}
    assert event.data == {**EXAMPLES[type_], **version}  # the row holds the keys that were set, under their JSON names
    assert event.typed == model == parse_payload(type_, event.payload)
    assert any_payload().validate_python({**EXAMPLES[type_], "event_type": type_}) == model
    assert json.loads(model.dump_text()) == model.dump()  # the fast JSON path (version key spliced in) agrees


def test_optional_keys_that_were_not_set_stay_out_of_the_row() -> None:
    assert ToolResultPayload(id="c1", result="5", error_type=None).dump() == {"id": "c1", "result": "5", "error_type": None, "v": 2}
    assert AgentStatePayload(turn=3).dump() == {"turn": 3}
    assert AgentStatePayload(from_="idle", to="running").dump() == {"from": "idle", "to": "running"}


def test_a_wrong_key_or_type_is_an_error_where_the_payload_is_built() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        ToolCallPayload(id="c1", arguments="{}", argumnets="{}")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="arguments"):
        ToolCallPayload(id="c1")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TaskStatusPayload(from_="a", to="b", output=None, error=None, assignee=None, artifacts="x")  # type: ignore[arg-type]


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(UnknownEventTypeError, match="unknown event type 'tool.called'"):
        payload_model("tool.called")
    with pytest.raises(ValidationError):
        make_event("tool.called", run_id="r", session_id="s")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        make_event(ToolCallPayload(id="c", arguments=""), run_id="r", session_id="s", payload={"id": "c"})


def test_a_later_payload_version_is_written_into_the_row_and_read_back_by_version() -> None:
    later = ToolCallPayload.payload_version + 1

    class ToolCallLater(ToolCallPayload):  # a subclass is not registered as the current model
        payload_version: ClassVar[int] = later

    event = make_event(ToolCallLater(id="c1", arguments="{}"), run_id="r", session_id="s")
    assert event.type == "tool.call" and event.data == {"id": "c1", "arguments": "{}", "v": later}
    assert payload_model("tool.call") is ToolCallPayload
    with pytest.raises(UnknownEventTypeError, match=f"no payload version {later}"):
        _ = event.typed
    # a row written before risk scores (version 1) reads with the model it was written with
    assert parse_payload("tool.call", '{"id": "c1", "arguments": "{}", "v": 1}') == ToolCallPayloadV1(id="c1", arguments="{}")


def test_rows_written_before_full_records_still_read() -> None:
    """llm.response v1, tool.call v2, tool.result/error v1, session.started v1 (before replay records)."""
    old_response = parse_payload("llm.response", '{"round": 1, "text": "hi", "tool_calls": [{"name": "n", "arguments": "{}"}]}')
    assert type(old_response).__name__ == "LLMResponsePayloadV1" and old_response.text == "hi"  # type: ignore[attr-defined]
    assert type(parse_payload("tool.call", '{"id": "c1", "arguments": "{}", "v": 2}')).__name__ == "ToolCallPayloadV2"
    assert type(parse_payload("tool.result", '{"id": "c1", "result": "5", "error_type": null}')).__name__ == "ToolOutcomeFieldsV1"
    started = parse_payload("session.started", '{"input": "hi", "team": "t", "placement": "local", "entry": "a", "budgets": {}}')
    assert type(started).__name__ == "SessionStartedPayloadV1"


def test_a_session_started_row_from_before_owners_still_reads() -> None:
    """session.started v2 (full records, no ``user``): read with its own model, and as an event row."""
    row = {"input": "hi", "team": "t", "placement": "local", "entry": "a", "budgets": {"max_tokens": None},
           "config": {"name": "t"}, "conversation": True, "forked_from": "s-0", "fork_point": "turn:1", "v": 2}
    old = parse_payload("session.started", json.dumps(row))
    assert type(old).__name__ == "SessionStartedPayloadV2"
    assert (old.config, old.conversation, old.forked_from) == ({"name": "t"}, True, "s-0")  # type: ignore[attr-defined]
    assert not hasattr(old, "user")
    event = Event(event_id="e1", run_id="r", session_id="s", type="session.started", payload=json.dumps(row))
    assert type(event.typed).__name__ == "SessionStartedPayloadV2"
    with pytest.raises(ValidationError):  # a v2 row that names a user is not a v2 row
        parse_payload("session.started", json.dumps({**row, "user": "ann"}))


def test_secrets_in_a_typed_payload_are_redacted() -> None:
    event = make_event(ToolCallPayload(id="c1", arguments='{"api_key": "sk-live0123456789abcdef"}'),
                       run_id="r", session_id="s")
    assert "sk-live" not in event.payload


def test_list_sink_collects_events() -> None:
    sink = ListSink()
    sink.emit(make_event(ToolCallPayload(id="c1", arguments=""), run_id="r", session_id="s"))
    assert sink.types() == ["tool.call"]


def test_the_lake_schema_is_derived_from_the_event_model_and_unchanged() -> None:
    assert tuple(Event.model_fields) == EVENT_COLUMNS
    # The lake's contract: existing lakes are read with this schema, so it must not drift.
    assert [(f.name, str(f.type), f.nullable) for f in ARROW_SCHEMA] == [
        ("schema_version", "int16", True), ("event_id", "string", True), ("ts", "timestamp[us, tz=UTC]", True),
        ("run_id", "string", True), ("session_id", "string", True), ("task_id", "string", True),
        ("turn", "int64", True), ("agent", "string", True), ("type", "string", True), ("seq", "int64", True),
        ("parent_event_id", "string", True), ("duration_ms", "double", True), ("model", "string", True),
        ("tool", "string", True), ("tokens_in", "int64", True), ("tokens_out", "int64", True),
        ("status", "string", True), ("payload", "string", True), ("position", "int64", True),
    ]
    assert [duckdb_type(f.type) for f in ARROW_SCHEMA][:4] == ["SMALLINT", "VARCHAR", "TIMESTAMPTZ", "VARCHAR"]


def test_arrow_types_of_a_model() -> None:
    from datetime import datetime
    from typing import Literal

    from pydantic import BaseModel, Field

    class Row(BaseModel):
        name: str
        kind: Literal["a", "b"]
        n: int = Field(default=0, ge=0)
        tags: list[str] = []
        score: float | None = None
        ok: bool = False
        at: datetime | None = None

    schema = arrow_schema(Row, metadata={"k": "v"})
    assert [(f.name, f.type, f.nullable) for f in schema] == [
        ("name", pa.string(), False), ("kind", pa.string(), False), ("n", pa.int64(), False),
        ("tags", pa.list_(pa.string()), False), ("score", pa.float64(), True), ("ok", pa.bool_(), False),
        ("at", pa.timestamp("us", tz="UTC"), True),
    ]
    assert schema.metadata == {b"k": b"v"}
    assert empty_select(schema) == (
        "SELECT CAST(NULL AS VARCHAR) AS name, CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS BIGINT) AS n, "
        "CAST(NULL AS VARCHAR[]) AS tags, CAST(NULL AS DOUBLE) AS score, CAST(NULL AS BOOLEAN) AS ok, "
        "CAST(NULL AS TIMESTAMPTZ) AS at WHERE false"
    )

    class Bad(BaseModel):
        blob: dict[str, int]

    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_schema(Bad)


def test_payload_models_are_json_schemas_too() -> None:
    schema = TaskStatusPayload.model_json_schema(by_alias=True)
    assert {"from", "to", "previous_assignee"} <= set(schema["properties"]) and "from_" not in schema["properties"]
    json.dumps(schema)


def test_the_base_payload_is_not_an_event_type() -> None:
    assert Payload not in PAYLOAD_MODELS.values()


def test_the_host_emitter_takes_payload_models_and_fills_in_the_envelope() -> None:
    from tests.runtime.teams import team
    from troupe.runtime.ids import RunId, SessionId
    from troupe.runtime.session.host import HostCore
    from troupe.runtime.session.spec import SessionSpec

    sink = ListSink()
    spec = SessionSpec(session_id=SessionId.new(), run_id=RunId.new(), team=team([{"id": "a"}], scripts={"*": []}))
    emit = HostCore(sink=sink).emitter(spec, "a")
    emit(ToolCallPayload(id="c1", arguments="{}"), tool="add")
    emit(ToolCallPayload(id="c2", arguments="{}"), tool="add", agent="other")
    assert [(e.type, e.agent, e.seq, e.tool, e.session_id, e.data["id"]) for e in sink.events] == [
        ("tool.call", "a", 1, "add", spec.session_id, "c1"), ("tool.call", "other", 2, "add", spec.session_id, "c2")]
    with pytest.raises(AttributeError, match="event_type"):  # the untyped form of before is refused
        emit("tool.call", payload={"id": "c3", "arguments": "{}"})  # type: ignore[arg-type]
    assert len(sink.events) == 2
