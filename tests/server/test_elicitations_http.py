"""MCP elicitation over real HTTP: the repo's MCP test server's ``book`` tool asks a form during a session
the server runs; the client lists it (with its schema) and answers it; a misfit form is 422 with what is
wrong and stays pending; a decline reaches the MCP server as a decline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.server.conftest import LiveServer
from tests.support.booking_team import write_booking_team


def wait_pending(server: LiveServer, sid: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = server.client.get(f"/sessions/{sid}/elicitations").json()
        if pending:
            return list(pending)
        time.sleep(0.05)
    raise AssertionError("no elicitation became pending")


def finished(server: LiveServer, sid: str) -> dict[str, dict[str, Any]]:
    result = server.client.get(f"/sessions/{sid}/result", params={"wait_s": 30}).json()
    assert result["status"] == "completed", result
    timeline = server.client.get(f"/sessions/{sid}/timeline").json()
    return {e["type"]: json.loads(e["payload"]) if isinstance(e["payload"], str) else e["payload"]
            for e in timeline if e["type"] in ("tool.result", "elicitation.requested", "elicitation.answered")}


def test_a_form_is_listed_with_its_schema_refused_when_misfit_and_answered(server: LiveServer, tmp_path: Path) -> None:
    write_booking_team(tmp_path / "teams")
    sid = server.client.post("/sessions", json={"team": "booking", "input": "book"}).json()["id"]
    [req] = wait_pending(server, sid)
    assert (req["session_id"], req["agent"], req["tool"], req["server"], req["mode"]) == (sid, "lead", "own__book", "own", "form")
    assert req["message"] == "Who is the booking for?" and req["id"].startswith(f"{sid}:")
    schema = req["requested_schema"]
    assert schema["properties"]["seats"]["default"] == 2 and schema["required"] == ["name"]
    assert server.client.get("/elicitations", params={"session": sid}).json() == [req]
    assert server.client.get("/elicitations").json() == [req]

    bad = server.client.post(f"/elicitations/{req['id']}/answer", json={"action": "accept", "content": {"seats": "many"}})
    assert bad.status_code == 422, bad.text
    body = bad.json()
    assert body["error"] == "the answer does not fit the form"
    assert any("'name' is a required property" in e for e in body["errors"]), body
    assert any(e.startswith("seats: 'many' is not of type 'integer'") for e in body["errors"]), body
    assert [e["id"] for e in server.client.get(f"/sessions/{sid}/elicitations").json()] == [req["id"]]  # still pending

    ok = server.client.post(f"/elicitations/{req['id']}/answer", json={"action": "accept", "content": {"name": "Ada"}})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["action"], ok.json()["by"], ok.json()["session_id"]) == ("accept", "client", sid)
    again = server.client.post(f"/elicitations/{req['id']}/answer", json={"action": "decline"})
    assert again.status_code == 404 and "not pending" in again.json()["error"]
    events = finished(server, sid)
    assert events["tool.result"]["result"] == "booked 2 seats for Ada"  # the schema's default filled in
    answered = events["elicitation.answered"]
    assert (answered["action"], answered["by"], answered["content_keys"]) == ("accept", "client", ["name", "seats"])
    assert answered["reason"] == "accept by local over HTTP"
    assert events["elicitation.requested"]["requested_schema"] == schema


def test_a_decline_reaches_the_mcp_server_and_unknown_ids_are_404(server: LiveServer, tmp_path: Path) -> None:
    write_booking_team(tmp_path / "teams")
    assert server.client.post("/elicitations/nope/answer", json={"action": "decline"}).status_code == 404
    sid = server.client.post("/sessions", json={"team": "booking", "input": "book"}).json()["id"]
    [req] = wait_pending(server, sid)
    assert server.client.post(f"/elicitations/{sid}:el99/answer", json={"action": "decline"}).status_code == 404
    r = server.client.post(f"/elicitations/{req['id']}/answer", json={"action": "decline", "reason": "not today"})
    assert r.status_code == 200 and r.json()["reason"] == "not today"
    events = finished(server, sid)
    assert events["tool.result"]["result"] == "not booked (decline)"
    assert server.client.get(f"/sessions/{sid}/elicitations").json() == []
