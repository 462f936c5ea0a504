"""Cancelling the turn under way of a conversation over real HTTP (local placement): the session stays
running, the next turn refers to the cancelled one, and a one-shot session says it has no turn to cancel."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.server.conftest import LiveServer

TEAM = {"name": "canceller", "entry": "a", "default_model": "m",
        "models": {"m": {"provider": "function", "function": "tests.support.turn_cancel_team:reply"}},
        "agents": [{"id": "a", "tools": ["tests.support.tool_fixtures:io_wait"]}]}


def test_cancel_the_current_turn_then_send_the_next(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "teams" / "canceller").mkdir(parents=True)
    (tmp_path / "teams" / "canceller" / "team.yaml").write_text(yaml.safe_dump(TEAM))
    work = tmp_path / "work"
    r = server.client.post("/sessions", json={"team": "canceller", "input": f"wait in {work}", "conversation": True})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    deadline = time.monotonic() + 20
    while not (work / "slow.start").exists():
        assert time.monotonic() < deadline, "the tool did not start"
        time.sleep(0.02)
    r = server.client.post(f"/sessions/{sid}/turns/current/cancel")
    assert r.status_code == 200, r.text
    assert r.json() == {"turn": 1, "cancelled": True, "tasks": []}
    assert (work / "slow.cancelled").exists()
    assert server.client.get(f"/sessions/{sid}").json()["status"] == "running"
    assert server.client.post(f"/sessions/{sid}/turns/current/cancel").json()["cancelled"] is False  # none under way
    assert server.client.post(f"/sessions/{sid}/turns", json={"input": "what did I ask first?"}).status_code == 202
    result = server.client.get(f"/sessions/{sid}/result", params={"wait_s": 10}).json()
    assert result == {"status": "running", "output": f"first: wait in {work} | stopped: 1 | noted: True", "error": None}
    schema = server.client.get("/openapi.json").json()
    assert "TurnCancel" in schema["components"]["schemas"]
    assert server.client.post(f"/sessions/{sid}/cancel").status_code == 202  # the session route is still there


def test_a_one_shot_session_has_no_turn_to_cancel(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "teams" / "canceller").mkdir(parents=True)
    (tmp_path / "teams" / "canceller" / "team.yaml").write_text(yaml.safe_dump(TEAM))
    sid = server.client.post("/sessions", json={"team": "canceller", "input": f"wait in {tmp_path / 'w'}"}).json()["id"]
    r = server.client.post(f"/sessions/{sid}/turns/current/cancel")
    assert r.status_code == 409 and "cancel the session instead" in r.text
    server.client.post(f"/sessions/{sid}/cancel")
