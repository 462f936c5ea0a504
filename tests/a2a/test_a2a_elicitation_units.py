"""What ``troupe a2a serve`` asks an A2A client for an MCP elicitation, and how it reads the answer (no network)."""

from __future__ import annotations

import uuid
from typing import Any

from a2a.types import Message, Part, Role

from troupe.runtime.a2a.elicitation import elicitation_request, read_reply
from troupe.runtime.events import ElicitationRequestedPayload, make_event

SCHEMA = {"type": "object", "required": ["name"],
          "properties": {"name": {"type": "string", "title": "Name"}, "seats": {"type": "integer", "default": 2},
                         "room": {"type": "string", "enum": ["in", "out"]}}}


def _asked(mode: str = "form") -> Any:
    payload = ElicitationRequestedPayload(id="s:el1", call_id="c1", server="own", mode=mode, message="Who?",
                                          fields=["name", "room", "seats"], timeout_s=30,
                                          url="https://x/login" if mode == "url" else None,
                                          requested_schema=SCHEMA if mode == "form" else None)
    return elicitation_request(make_event(payload, run_id="r", session_id="s", agent="lead", tool="own__book"))


def _text(words: str) -> Message:
    return Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=words)])


def _data(data: dict[str, Any]) -> Message:
    part = Part()
    part.data.struct_value.update(data)
    return Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[part])


def test_the_form_is_described_for_people_and_programs() -> None:
    asked = _asked()
    assert asked.id == "s:el1"
    assert "name (string, required); seats (integer, default 2); room (string, one of in/out)" in asked.line
    assert asked.form["fields"][0] == {"name": "name", "type": "string", "required": True, "title": "Name"}
    text, data = asked.parts("bad seats")
    assert text.text.startswith("bad seats; answer again. MCP server 'own' (in lead's call of own__book) asks: Who?")
    assert data.data.struct_value["problem"] == "bad seats" and data.media_type == "application/json"


def test_answers_by_data_part_or_words() -> None:
    asked = _asked()
    full = read_reply(_data({"action": "accept", "content": {"name": "Ada", "seats": 3}}), asked)
    assert (full.action, full.content, full.problem) == ("accept", {"name": "Ada", "seats": 3}, "")
    assert full.content is not None and isinstance(full.content["seats"], int)  # a Struct's 3.0 is the integer field's 3
    bare = read_reply(_data({"name": "Ada", "reason": "mine"}), asked)
    assert (bare.action, bare.content, bare.said) == ("accept", {"name": "Ada", "seats": 2}, "mine")
    assert read_reply(_text('{"name": "Al", "room": "in"}'), asked).content == {"name": "Al", "room": "in", "seats": 2}
    for words, action in (("cancel", "cancel"), ("Decline!", "decline")):
        reply = read_reply(_text(words), asked)
        assert (reply.action, reply.content, reply.problem) == (action, None, "")
    assert read_reply(_data({"action": "cancel"}), asked).action == "cancel"


def test_what_is_no_answer_or_does_not_fit_says_why() -> None:
    asked = _asked()
    assert "is not of type 'integer'" in read_reply(_data({"name": "Ada", "seats": "many"}), asked).problem
    assert "'name' is a required property" in read_reply(_text("ok"), asked).problem  # the defaults are not enough
    assert "is not one of" in read_reply(_data({"name": "Ada", "room": "roof"}), asked).problem
    assert "none of accept" in read_reply(_data({"action": "maybe"}), asked).problem
    assert "not an object" in read_reply(_data({"action": "accept", "content": "Ada"}), asked).problem
    assert "is not an answer" in read_reply(_text("later"), asked).problem
    assert "not a JSON object" in read_reply(_text("{nope"), asked).problem


def test_a_url_request_is_accepted_by_words() -> None:
    asked = _asked("url")
    assert asked.form["url"] == "https://x/login" and "open https://x/login" in asked.line
    reply = read_reply(_text("done"), asked)
    assert (reply.action, reply.content, reply.problem) == ("accept", None, "")
