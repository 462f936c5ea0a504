"""The A2A pieces without a network: the team-file entry, the card, what a remote member sends, status lines."""

from __future__ import annotations

import pytest
import yaml
from a2a.types import Message, Part, Role
from google.protobuf.json_format import MessageToDict

from tests.support.a2a_teams import MEMBER_TEAM, SERVED_TEAM
from troupe.runtime.a2a.card import agent_card
from troupe.runtime.a2a.executor import answer, approval_request, describe
from troupe.runtime.a2a_config import A2AMember
from troupe.runtime.agent.a2a_member import outgoing_text
from troupe.runtime.config import parse_team
from troupe.runtime.errors import TeamConfigError
from troupe.runtime.events import ApprovalRequestedPayload, make_event
from troupe.runtime.events.message import MessageSentPayload
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import Envelope, MessageKind


def test_a_member_entry_checks_its_url_and_secrets() -> None:
    assert A2AMember(url="http://x:1/").url == "http://x:1"
    assert A2AMember(url="https://x", api_key="${secret:K}").header_templates() == {"Authorization": "Bearer ${secret:K}"}
    with pytest.raises(ValueError, match="http:// or https://"):
        A2AMember(url="ftp://x")
    data = yaml.safe_load(MEMBER_TEAM % "http://127.0.0.1:1")
    data["agents"][1]["a2a"]["headers"] = {"X-Key": "${secret:NOPE}"}
    with pytest.raises(TeamConfigError, match="a2a headers name secret"):
        parse_team(data)
    data["secrets"] = {"NOPE": "env:NOPE_VAR"}
    assert parse_team(data).agent("calc").a2a is not None


def test_card_has_a_skill_per_agent_streaming_and_bearer_when_secured() -> None:
    team = parse_team(yaml.safe_load(SERVED_TEAM))
    card = agent_card(team, "http://127.0.0.1:9/", secured=False)
    assert card.name == "greeter" and card.capabilities.streaming
    assert [s.id for s in card.skills] == ["greeter", "helper"]
    assert card.skills[0].description == "greets the caller. Answer every greeting."
    assert card.supported_interfaces[0].protocol_version == "1.0" and not card.security_requirements
    secured = agent_card(team, "http://h/", secured=True)
    assert secured.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"


def _env(kind: MessageKind, content: str, **data: object) -> Envelope:
    return Envelope(session_id=SessionId("s"), sender=AgentId("lead"), recipient=AgentId("calc"), kind=kind,
                    content=content, data=dict(data))


def test_a_remote_member_sends_a_tasks_goal_or_the_messages() -> None:
    task = _env(MessageKind.TASK, "Task t-1: add 2 and 3", task_id="t-1", input={"context": "sum things"})
    assert outgoing_text([task]) == "add 2 and 3\n(It is part of this request: sum things)"
    text = _env(MessageKind.TEXT, "hello")
    assert outgoing_text([text]) == "hello"
    assert outgoing_text([text, task]).startswith("Message from lead: hello\n\nNew task t-1 from lead: add 2 and 3")


def test_status_lines_from_session_events() -> None:
    sent = make_event(MessageSentPayload(id="m", to="calc", topic=None, kind="text", content="add 1 and 2"), run_id="r",
                      session_id="s", agent="lead")
    assert describe(sent) == "lead -> calc: add 1 and 2"
    to_user = make_event(MessageSentPayload(id="m", to="user", topic=None, kind="text", content="done"), run_id="r", session_id="s",
                         agent="lead")
    assert describe(to_user) is None


def _message(*parts: object) -> Message:
    return Message(role=Role.ROLE_USER, message_id="m", parts=list(parts))  # type: ignore[arg-type]


def _data(value: dict[str, object]) -> Part:
    part = Part()
    part.data.struct_value.update(value)
    return part


def test_an_approval_answer_is_a_data_part_or_words() -> None:
    assert answer(_message(Part(text="Approve."))) == (True, "Approve.")
    assert answer(_message(Part(text="no, not now"))) == (False, "no, not now")
    assert answer(_message()) == (False, "")  # silence denies
    assert answer(_message(_data({"approve": True}))) == (True, '{"approve": true}')
    assert answer(_message(Part(text="see data"), _data({"approved": False, "reason": "too risky"}))) == (False, "too risky")
    assert answer(_message(Part(text="yes"), _data({"approve": "maybe"}))) == (True, "yes")  # not a boolean: the words


def test_input_required_asks_in_words_and_as_data() -> None:
    requested = make_event(ApprovalRequestedPayload(id="s:a1", agent="greeter", tool="write_mark", arguments='{"path": "x"}',
                                                    call_id="c", timeout_s=300), run_id="r", session_id="s",
                           agent="greeter", tool="write_mark")
    approval, (line, data) = approval_request(requested)
    assert approval == "s:a1" and line.text.startswith("greeter wants to call write_mark with {\"path\": \"x\"}")
    assert MessageToDict(data)["data"] == {"approval_id": "s:a1", "agent": "greeter", "tool": "write_mark",
                                           "arguments": '{"path": "x"}', "timeout_s": 300.0,
                                           "answer": {"approve": "boolean", "reason": "string (optional)"}}
