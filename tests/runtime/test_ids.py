"""Unit tests for id value objects (runtime/ids.py) and the message envelope (runtime/messages.py)."""

from __future__ import annotations

import json
import pickle
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from troupe.runtime.ids import (
    BLACKBOARD,
    MEMORY,
    RESERVED_NAMES,
    SUPERVISOR,
    TASKS,
    USER,
    Address,
    AgentId,
    MessageId,
    RunId,
    SessionId,
    TaskId,
)
from troupe.runtime.messages import ControlOp, Envelope, MessageKind, Trace

ID_KINDS = [
    (SessionId, "s-", "session id"),
    (RunId, "r-", "run id"),
    (AgentId, "a-", "agent id"),
    (TaskId, "t-", "task id"),
    (MessageId, "m-", "message id"),
]
RULE = (
    "use 1-128 characters from letters, digits, '.', '_', ':' and '-', starting with a letter or digit"
)


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "prefix", "kind"), ID_KINDS)
@pytest.mark.parametrize(
    "bad",
    ["", "-lead", ".lead", "_lead", "lead worker", "a/b", "a*b", "ünïcode", "x" * 129, "tab\there"],
)
def test_invalid_ids_raise_value_error_naming_kind_and_rule(cls, prefix, kind, bad):
    with pytest.raises(ValueError) as info:
        cls(bad)
    assert str(info.value) == f"invalid {kind} {bad!r}: {RULE}"


@pytest.mark.parametrize(("cls", "prefix", "kind"), ID_KINDS)
@pytest.mark.parametrize("bad", [None, 5, 3.5, b"lead", ["lead"]])
def test_non_string_ids_are_rejected(cls, prefix, kind, bad):
    with pytest.raises(ValueError, match=re.escape(f"invalid {kind} {bad!r}")):
        cls(bad)


@pytest.mark.parametrize("bad", ["lead\n", "t-1\n"])
def test_trailing_newline_is_not_a_valid_id(bad):
    # An id ending in a newline would break Ray actor names, log lines and DuckDB equality;
    # the rule says letters, digits and . _ : - only.
    with pytest.raises(ValueError, match="invalid agent id"):
        AgentId(bad)


@pytest.mark.parametrize(
    "good", ["a", "0", "lead", "worker_a", "lead.checker", "ns:name", "A-b_c.d:e", "x" * 128, "9lives"]
)
def test_valid_ids_keep_their_exact_text(good):
    aid = AgentId(good)
    assert isinstance(aid, AgentId)
    assert isinstance(aid, str)
    assert str(aid) == good
    assert aid == good
    assert hash(aid) == hash(good)
    assert {good: 1}[aid] == 1  # usable as the key of a plain-str dict
    assert f"{aid}" == good
    assert json.dumps(aid) == json.dumps(good)


def test_constructing_from_same_kind_returns_the_same_object():
    aid = AgentId("lead")
    assert AgentId(aid) is aid


def test_constructing_from_another_kind_revalidates_and_converts():
    tid = TaskId(SessionId("s-abc"))
    assert type(tid) is TaskId
    assert tid == "s-abc"


def test_repr_is_plain_quoted_text_so_messages_read_naturally():
    assert repr(AgentId("lead")) == "'lead'"
    assert f"unknown agent {TaskId('t-1')!r}" == "unknown agent 't-1'"
    assert repr([AgentId("a"), AgentId("b")]) == "['a', 'b']"


# --- new() -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "prefix", "kind"), ID_KINDS)
def test_new_has_kind_prefix_and_is_unique(cls, prefix, kind):
    ids = [cls.new() for _ in range(200)]
    assert len(set(ids)) == 200
    hex_len = 32 if cls is MessageId else 16
    for i in ids:
        assert type(i) is cls
        assert re.fullmatch(re.escape(prefix) + f"[0-9a-f]{{{hex_len}}}", i), i


# --- pickling --------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "prefix", "kind"), ID_KINDS)
def test_ids_pickle_round_trip(cls, prefix, kind):
    original = cls.new()
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(original, protocol=protocol))
        assert type(back) is cls
        assert back == original
        assert str(back) == str(original)


def test_address_pickle_round_trip():
    addr = Address("s-1", "lead")
    back = pickle.loads(pickle.dumps(addr))
    assert type(back) is Address
    assert back == "s-1/lead"
    assert (back.session_id, back.agent) == (SessionId("s-1"), AgentId("lead"))


def test_envelope_pickle_round_trip():
    env = Envelope(
        session_id="s-1",
        sender="lead",
        recipient="worker",
        kind=MessageKind.TASK,
        content="do it",
        data={"task_id": "t-1", "nested": [1, 2, {"x": None}]},
        reply_to=MessageId.new(),
        deadline=datetime(2026, 1, 2, tzinfo=UTC),
        trace=Trace(run_id="r-1", task_id="t-1", parent_event_id="e1"),
    )
    back = pickle.loads(pickle.dumps(env))
    assert back == env
    assert type(back.id) is MessageId
    assert type(back.sender) is AgentId
    assert type(back.trace.run_id) is RunId
    assert back.model_dump() == env.model_dump()


# --- pydantic fields -------------------------------------------------------------------------
class _Holder(BaseModel):
    agent: AgentId
    task: TaskId | None = None
    session: SessionId
    members: list[AgentId] = []


def test_pydantic_fields_validate_into_id_types():
    h = _Holder(agent="lead", task="t-1", session="s-1", members=["a", "b"])
    assert type(h.agent) is AgentId
    assert type(h.task) is TaskId
    assert type(h.session) is SessionId
    assert [type(m) for m in h.members] == [AgentId, AgentId]


def test_pydantic_field_rejects_invalid_id_with_kind_and_rule():
    with pytest.raises(ValidationError) as info:
        _Holder(agent="bad name", session="s-1")
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("agent",)]
    assert errors[0]["msg"] == f"Value error, invalid agent id 'bad name': {RULE}"


def test_pydantic_field_rejects_non_string():
    with pytest.raises(ValidationError) as info:
        _Holder(agent=123, session="s-1")
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("agent",), "string_type")]


def test_pydantic_serialises_ids_as_plain_strings():
    h = _Holder(agent="lead", task=None, session="s-1", members=["a"])
    assert h.model_dump_json() == '{"agent":"lead","task":null,"session":"s-1","members":["a"]}'
    dumped = h.model_dump(mode="json")
    assert dumped == {"agent": "lead", "task": None, "session": "s-1", "members": ["a"]}
    assert [type(v) for v in (dumped["agent"], dumped["session"], dumped["members"][0])] == [str, str, str]
    assert _Holder.model_validate_json(h.model_dump_json()) == h


def test_json_schema_of_id_field_is_string():
    schema = _Holder.model_json_schema()
    assert schema["properties"]["agent"] == {"title": "Agent", "type": "string"}


# --- Address ---------------------------------------------------------------------------------
def test_address_form_and_properties():
    addr = Address("s-1", "lead")
    assert addr == "s-1/lead"
    assert isinstance(addr, str)
    assert type(addr.session_id) is SessionId and addr.session_id == "s-1"
    assert type(addr.agent) is AgentId and addr.agent == "lead"


def test_address_parse_round_trip():
    addr = Address.parse("s-abc/worker_a")
    assert type(addr) is Address
    assert addr == Address("s-abc", "worker_a")
    assert (addr.session_id, addr.agent) == ("s-abc", "worker_a")


def test_address_parse_without_slash_names_the_expected_form():
    with pytest.raises(ValueError) as info:
        Address.parse("lead")
    assert str(info.value) == "invalid address 'lead': expected '<session>/<agent>'"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("/lead", "session id"), ("s-1/", "agent id"), ("s-1/a/b", "agent id"), ("s 1/lead", "session id")],
)
def test_address_parse_validates_both_parts(text, kind):
    with pytest.raises(ValueError, match=f"invalid {kind}"):
        Address.parse(text)


def test_address_constructor_validates_parts():
    with pytest.raises(ValueError, match="invalid agent id 'a b'"):
        Address("s-1", "a b")


# --- reserved names --------------------------------------------------------------------------
def test_reserved_names():
    assert (BLACKBOARD, TASKS, SUPERVISOR, USER, MEMORY) == ("blackboard", "tasks", "session", "user", "memory")
    assert frozenset({"blackboard", "tasks", "session", "user", "memory"}) == RESERVED_NAMES
    assert all(type(n) is AgentId for n in RESERVED_NAMES)


# --- Envelope --------------------------------------------------------------------------------
def test_envelope_defaults():
    before = datetime.now(UTC)
    env = Envelope(session_id="s-1", sender="user")
    after = datetime.now(UTC)
    assert type(env.id) is MessageId and re.fullmatch(r"m-[0-9a-f]{32}", env.id)
    assert env.model_dump(exclude={"id", "created_at"}) == {
        "session_id": "s-1",
        "sender": "user",
        "recipient": None,
        "topic": None,
        "kind": MessageKind.TEXT,
        "content": "",
        "data": {},
        "reply_to": None,
        "deadline": None,
        "trace": {"run_id": None, "task_id": None, "parent_event_id": None, "turn": None},
    }
    assert env.created_at.tzinfo is not None
    assert before <= env.created_at <= after
    assert env.is_control is False


def test_envelope_ids_are_fresh_and_mutable_defaults_not_shared():
    a = Envelope(session_id="s-1", sender="user")
    b = Envelope(session_id="s-1", sender="user")
    assert a.id != b.id
    assert a.data is not b.data


def test_envelope_is_frozen():
    env = Envelope(session_id="s-1", sender="user")
    with pytest.raises(ValidationError):
        env.content = "changed"  # type: ignore[misc]


def test_envelope_validates_ids_and_kind():
    with pytest.raises(ValidationError) as info:
        Envelope(session_id="s 1", sender="bad sender", recipient="ok", kind="shout", reply_to="m bad")
    assert sorted(e["loc"][0] for e in info.value.errors()) == ["kind", "reply_to", "sender", "session_id"]


def test_envelope_is_control():
    env = Envelope(session_id="s-1", sender="user", kind="control", data={"op": ControlOp.PAUSE})
    assert env.kind is MessageKind.CONTROL
    assert env.is_control is True
    assert [k.value for k in MessageKind] == ["text", "task", "notice", "control"]
    assert [o.value for o in ControlOp] == ["pause", "resume", "cancel", "terminate"]


def test_envelope_to_keeps_id_and_everything_else():
    env = Envelope(
        session_id="s-1", sender="lead", topic="workers", content="hello", data={"k": 1},
        deadline=datetime.now(UTC) + timedelta(seconds=5), trace=Trace(run_id="r-1"),
    )
    copy = env.to(AgentId("worker_a"))
    assert copy.id == env.id
    assert copy.recipient == "worker_a"
    assert copy.model_dump(exclude={"recipient"}) == env.model_dump(exclude={"recipient"})
    assert env.recipient is None  # the original is untouched


def test_envelope_json_round_trip():
    env = Envelope(session_id="s-1", sender="lead", recipient="w", trace=Trace(run_id="r-9", task_id="t-2"))
    data = json.loads(env.model_dump_json())
    assert (data["session_id"], data["sender"], data["recipient"], data["id"]) == ("s-1", "lead", "w", str(env.id))
    assert data["trace"] == {"run_id": "r-9", "task_id": "t-2", "parent_event_id": None, "turn": None}
    back = Envelope.model_validate_json(env.model_dump_json())
    assert back == env
    assert type(back.trace.task_id) is TaskId
