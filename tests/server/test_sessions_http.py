"""The session API over real HTTP, local placement: create, result, list, turns, cancel, timeline, SSE."""

from __future__ import annotations

import time
from typing import Any

from tests.server.conftest import LiveServer


def wait_status(server: LiveServer, sid: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = server.client.get(f"/sessions/{sid}").json()
        if info["status"] == status or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def test_health_teams_and_validate(server: LiveServer) -> None:
    assert server.client.get("/health").json()["ok"] is True
    teams = {t["name"]: t for t in server.client.get("/teams").json()}
    assert teams["echo"]["agents"] == [{"id": "lead", "role": "answers", "model": "m"}]
    bad = server.client.post("/teams/validate", json={"yaml": "name: x\nentry: a\nagents: []\n"}).json()
    assert bad["ok"] is False and bad["errors"]
    good = server.client.post("/teams/validate", json={"yaml": (
        "name: x\nentry: a\ndefault_model: m\nmodels: {m: {provider: scripted}}\nagents: [{id: a}]\n")}).json()
    assert good == {"ok": True, "errors": []}
    schema = server.client.get("/openapi.json").json()
    assert "/api/v1/sessions/{sid}/events" in schema["paths"] and "SessionInfo" in schema["components"]["schemas"]


def test_create_result_list_and_lake(server: LiveServer) -> None:
    r = server.client.post("/sessions", json={"team": "echo", "input": "hi"})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["user"] == "local" and info["team"] == "echo" and info["status"] == "running"
    result = server.client.get(f"/sessions/{info['id']}/result", params={"wait_s": 10}).json()
    assert result == {"status": "completed", "output": "hello back", "error": None}
    assert wait_status(server, info["id"], "completed")["result"]["output"] == "hello back"
    listed = server.client.get("/sessions", params={"status": "completed"}).json()
    assert [s["id"] for s in listed] == [info["id"]]
    timeline = server.client.get(f"/sessions/{info['id']}/timeline").json()
    assert timeline[0]["type"] == "session.started" and "session.finished" in [e["type"] for e in timeline]
    assert '"user":"local"' in timeline[0]["payload"]  # the owner is in the lake
    assert server.client.get("/sessions/s-nope").status_code == 404
    [run] = server.client.get("/runs").json()
    assert (run["session_id"], run["user"], run["team"], run["status"]) == (info["id"], "local", "echo", "completed")
    refused = server.client.post("/sessions", json={"team": "../../etc", "input": "x"})
    assert refused.status_code == 400 and set(refused.json()) == {"error", "reason"}


def test_finished_session_streams_from_the_lake(server: LiveServer) -> None:
    sid = server.client.post("/sessions", json={"team": "echo", "input": "hi"}).json()["id"]
    wait_status(server, sid, "completed")
    timeline = server.client.get(f"/sessions/{sid}/timeline").json()
    frames = server.sse(f"/sessions/{sid}/events")
    assert frames[-1] == {"event": "end", "data": {"status": "completed"}}
    events = frames[:-1]
    assert [int(f["id"]) for f in events] == list(range(1, len(timeline) + 1))
    assert [f["data"]["event_id"] for f in events] == [e["event_id"] for e in timeline]
    # resume from the middle: the rest, none repeated
    rest = server.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": "2"})
    assert [f["data"]["event_id"] for f in rest[:-1]] == [e["event_id"] for e in timeline[2:]]


def test_sse_reconnect_mid_session_approvals_blackboard_tasks(server: LiveServer) -> None:
    sid = server.client.post("/sessions", json={"team": "board", "input": "go"}).json()["id"]
    first = server.sse(f"/sessions/{sid}/events", stop=lambda f: f.get("event") == "approval.requested")
    assert first[-1]["event"] == "approval.requested"
    assert [int(f["id"]) for f in first] == list(range(1, len(first) + 1))
    # while it waits: approvals, blackboard, tasks
    [pending] = server.client.get("/approvals", params={"session": sid}).json()
    assert pending["tool"] == "approved_write" and pending["session_id"] == sid
    board = server.client.get(f"/sessions/{sid}/blackboard").json()["entries"]
    assert [(e["key"], e["value"], e["writer"]) for e in board] == [("plan/step", "one", "lead")]
    [task] = server.client.get(f"/sessions/{sid}/tasks").json()["tasks"]
    assert task["goal"] == "write the file"
    decided = server.client.post(f"/approvals/{pending['id']}/approve", json={"reason": "ok"})
    assert decided.status_code == 200 and decided.json()["approved"] is True
    rest = server.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": first[-1]["id"]})
    assert rest[-1]["event"] == "end"
    ids = [int(f["id"]) for f in first + rest[:-1]]
    assert ids == list(range(1, len(ids) + 1))  # nothing lost, nothing repeated
    timeline = server.client.get(f"/sessions/{sid}/timeline").json()
    assert [f["data"]["event_id"] for f in first + rest[:-1]] == [e["event_id"] for e in timeline]


def test_cancel_and_deny(server: LiveServer) -> None:
    sid = server.client.post("/sessions", json={"team": "gated", "input": "go"}).json()["id"]
    server.sse(f"/sessions/{sid}/events", stop=lambda f: f.get("event") == "approval.requested")
    [pending] = server.client.get("/approvals").json()
    denied = server.client.post(f"/approvals/{pending['id']}/deny", json={"reason": "no"})
    assert denied.status_code == 200 and denied.json()["approved"] is False
    assert server.client.post(f"/approvals/{pending['id']}/deny").status_code in (404, 409)
    second = server.client.post("/sessions", json={"team": "gated", "input": "go"}).json()["id"]
    server.sse(f"/sessions/{second}/events", stop=lambda f: f.get("event") == "approval.requested")
    assert server.client.post(f"/sessions/{second}/cancel").status_code == 202
    assert server.client.get(f"/sessions/{second}/result", params={"wait_s": 10}).json()["status"] == "cancelled"
    frames = server.sse(f"/sessions/{second}/events", headers={"Last-Event-ID": "1"})
    assert frames[-1] == {"event": "end", "data": {"status": "cancelled"}}
    assert server.client.post(f"/sessions/{second}/turns", json={"input": "more"}).status_code == 409
