"""ACP's side of MCP elicitation without I/O: ``elicitation/create`` for a client that advertised forms,
``session/request_permission`` (allow: the form's defaults; reject: decline) for one that did not, and a
client that fails to answer declines."""

from __future__ import annotations

from typing import Any

from acp.schema import (
    AcceptElicitationResponse,
    AllowedOutcome,
    ClientCapabilities,
    ElicitationCapabilities,
    ElicitationFormCapabilities,
    RequestPermissionResponse,
    ToolCallUpdate,
)

from troupe.runtime.acp.bridge import ALLOW, OPTIONS
from troupe.runtime.acp.elicitation import ask, client_modes
from troupe.runtime.events import ElicitationRequestedPayload, Event

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "seats": {"type": "integer", "default": 2}},
          "required": ["name"]}


def requested() -> Event:
    payload = ElicitationRequestedPayload(id="s-1:el1", call_id="c1", server="own", message="Who is the booking for?",
                                          fields=["name", "seats"], requested_schema=SCHEMA)
    return Event(run_id="r", session_id="s-1", type=payload.event_type, agent="lead", tool="own__book",
                 payload=payload.model_dump_json())


class Session:
    def __init__(self) -> None:
        self.answers: list[tuple[Any, ...]] = []

    async def answer_elicitation(self, eid: str, action: str, content: Any, reason: str) -> None:
        self.answers.append((eid, action, content, reason))


class Client:
    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, []

    async def create_elicitation(self, **kw: Any) -> Any:
        self.calls.append(("create", kw))
        return self.answer

    async def request_permission(self, **kw: Any) -> Any:
        self.calls.append(("permission", kw))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


CALL = ToolCallUpdate(tool_call_id="lead:c1", title="own__book", status="pending")


async def test_a_form_client_gets_elicitation_create_with_the_schema() -> None:
    caps = ClientCapabilities(elicitation=ElicitationCapabilities(form=ElicitationFormCapabilities()))
    assert client_modes(caps) == {"form"} and client_modes(ClientCapabilities()) == set()
    client, session = Client(AcceptElicitationResponse(action="accept", content={"name": "Ada"})), Session()
    await ask(client, "sess_1", session, requested(), CALL, {"form"}, OPTIONS, ALLOW)
    [(kind, kw)] = client.calls
    assert kind == "create" and kw["message"] == "MCP server 'own' asks: Who is the booking for?"
    assert (kw["mode"].session_id, kw["mode"].tool_call_id) == ("sess_1", "lead:c1")
    assert kw["mode"].requested_schema.required == ["name"]
    assert session.answers[0][:3] == ("s-1:el1", "accept", {"name": "Ada"})


async def test_other_clients_get_a_permission_request_and_failures_decline() -> None:
    allow = RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=ALLOW))
    client, session = Client(allow), Session()
    await ask(client, "sess_1", session, requested(), CALL, set(), OPTIONS, ALLOW)
    [(kind, kw)] = client.calls
    assert kind == "permission" and kw["tool_call"].title == "MCP server 'own' asks: Who is the booking for?"
    assert session.answers[0][:3] == ("s-1:el1", "accept", {})  # the form's defaults
    session = Session()
    await ask(Client(RuntimeError("gone")), "sess_1", session, requested(), CALL, set(), OPTIONS, ALLOW)
    assert session.answers[0][1:3] == ("decline", None) and "did not answer" in session.answers[0][3]
