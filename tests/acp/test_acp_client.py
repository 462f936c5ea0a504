"""``troupe acp`` driven by a real ACP client: the ``agent-client-protocol`` SDK from a venv of its own
(tests/support/acp_peer.py) spawns ``troupe acp <scripted team> --local`` and talks to it over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.acp_peer import CLIENT, acp_client_python  # noqa: F401  (the fixture)
from tests.support.acp_team import TEAM
from troupe.runtime.eventlog.lake import query

REPO = Path(__file__).resolve().parents[2]


def _drive(python: Path, tmp: Path, answer: str, *prompts: str) -> tuple[dict[str, Any], Path]:
    team = tmp / "team.yaml"
    team.write_text(TEAM)
    lake = tmp / "lake"
    command = [sys.executable, "-m", "troupe.runtime.cli", "acp", str(team), "--local", "--lake", str(lake)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the team's function model and tool: tests.support.acp_team
    proc = subprocess.run([str(python), str(CLIENT), answer, str(tmp / "project"), *prompts, "--", *command],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), lake


def _updates(out: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["update"] for e in out["log"] if "update" in e and e["update"]["sessionUpdate"] == kind]


def _events(lake: Path, sql: str) -> list[dict[str, Any]]:
    return query(str(lake), sql).to_pylist()


def test_a_prompt_streams_messages_tool_calls_a_plan_and_asks_permission(acp_client_python: Path,
                                                                          tmp_path: Path) -> None:
    out, lake = _drive(acp_client_python, tmp_path, "allow", "plan and write", "hello again")
    init = out["initialize"]
    assert init["authMethods"] == [] and init["agentCapabilities"]["promptCapabilities"]["embeddedContext"] is True
    assert [p["stopReason"] for p in out["prompts"]] == ["end_turn", "end_turn"]
    text = "".join(u["content"]["text"] for u in _updates(out, "agent_message_chunk"))
    assert "wrote notes: wrote 19 characters to notes.md" in text and "echo: hello again" in text
    # the tool call that needed approval: started pending, asked, then in progress and completed
    [start] = [u for u in _updates(out, "tool_call") if u["toolCallId"] == "lead/c2"]
    assert start["kind"] == "edit" and start["status"] == "pending"
    assert start["rawInput"] == {"path": "notes.md", "content": "hello from the team"}
    session_id = out["prompts"][0]["_meta"]["troupe"]["session_id"]
    workspace = tmp_path / "project" / ".troupe" / "workspaces" / session_id
    assert start["locations"] == [{"path": str(workspace / "notes.md")}]
    assert (workspace / "notes.md").read_text() == "hello from the team"
    [asked] = [e for e in out["log"] if "permission" in e]
    assert asked["permission"]["toolCallId"] == "lead/c2"
    assert {o["kind"] for o in asked["options"]} == {"allow_once", "reject_once"}
    statuses = [u["status"] for u in _updates(out, "tool_call_update") if u["toolCallId"] == "lead/c2"]
    assert statuses == ["in_progress", "completed"]
    # the plan: the task tree, pending then completed
    plans = [[(e["content"], e["status"]) for e in u["entries"]] for u in _updates(out, "plan")]
    assert plans == [[("write the notes", "pending")], [("write the notes", "completed")]]
    # every update of a turn came before its answer
    first_answer = next(i for i, e in enumerate(out["log"]) if "response" in e)
    assert any("permission" in e for e in out["log"][:first_answer])
    rows = _events(lake, f"select type, status, agent from events where session_id = '{session_id}' "
                         "and type in ('approval.decided', 'turn.finished', 'session.finished') order by ts")
    assert [(r["type"], r["status"]) for r in rows] == [
        ("approval.decided", "approved"), ("turn.finished", "ok"), ("turn.finished", "ok"), ("session.finished", "cancelled")]


def test_a_rejected_permission_denies_the_call(acp_client_python: Path, tmp_path: Path) -> None:
    out, lake = _drive(acp_client_python, tmp_path, "reject", "plan and write")
    assert out["prompts"][0]["stopReason"] == "end_turn"
    statuses = [u["status"] for u in _updates(out, "tool_call_update") if u["toolCallId"] == "lead/c2"]
    assert statuses == ["failed"]
    session_id = out["prompts"][0]["_meta"]["troupe"]["session_id"]
    assert not (tmp_path / "project" / ".troupe" / "workspaces" / session_id / "notes.md").exists()
    rows = _events(lake, f"select type, status, payload from events where session_id = '{session_id}' "
                         "and type in ('approval.decided', 'guardrail.denied', 'tool.result') order by ts")
    kinds = [(r["type"], r["status"]) for r in rows]
    assert ("approval.decided", "denied") in kinds and ("guardrail.denied", "denied") in kinds
    decided = json.loads(next(r["payload"] for r in rows if r["type"] == "approval.decided"))
    assert decided["by"] == "client" and "rejected by the ACP client" in decided["reason"]


def test_cancel_ends_the_turn_cancelled_and_the_next_prompt_goes_on_in_the_same_session(acp_client_python: Path,
                                                                                          tmp_path: Path) -> None:
    out, lake = _drive(acp_client_python, tmp_path, "allow", "cancel:slow", "what did I ask first?")
    assert [p["stopReason"] for p in out["prompts"]] == ["cancelled", "end_turn"]
    first, second = (p["_meta"]["troupe"]["session_id"] for p in out["prompts"])
    assert first == second  # a cancel ends the turn, not the Troupe session
    assert [p["_meta"]["troupe"]["turn"] for p in out["prompts"]] == [1, 2]
    cancel_at = next(i for i, e in enumerate(out["log"]) if "cancel" in e)
    answer_at = next(i for i, e in enumerate(out["log"]) if "response" in e)
    assert cancel_at < answer_at
    # the plan's task, created in the cancelled turn, was cancelled with it (before the answer)
    plans = [(i, [(p["content"], p["status"]) for p in e["update"]["entries"]]) for i, e in enumerate(out["log"])
             if "update" in e and e["update"]["sessionUpdate"] == "plan"]
    assert plans[-1][1] == [("a long job", "completed")] and plans[-1][0] < answer_at
    text = "".join(u["content"]["text"] for u in _updates(out, "agent_message_chunk"))
    assert "you first asked: slow (a cancelled turn noted: True)" in text  # the first turn is in the context
    rows = _events(lake, f"select type, status, turn from events where session_id = '{first}' "
                         "and type in ('turn.cancelled', 'turn.finished', 'task.status', 'session.finished') order by ts")
    assert [(r["type"], r["status"], r["turn"]) for r in rows] == [
        ("task.status", "cancelled", 1), ("turn.cancelled", "cancelled", 1), ("turn.finished", "ok", 2),
        ("session.finished", "cancelled", 2)]
