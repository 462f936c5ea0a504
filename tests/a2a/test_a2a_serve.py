"""``troupe a2a serve``: a real A2A client (a2a-sdk, from a venv of its own) reads the card of a scripted team,
streams a task to completion, gets it with its artifacts (the reply and the blackboard entry), cancels a
second, long task, answers approvals (the task is ``input-required``; words or a data part approve or deny
it) and an MCP server's forms (elicitation: a data part fills the form, words decline it; a misfit is asked
again); the sessions, decisions and access refusals are in the lake. One server serves the module's client
scenarios (one client process runs them all): starting and stopping servers is most of these tests' time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.a2a_peers import CLIENT_SCRIPT
from tests.support.a2a_teams import SERVED_TEAM, booking_served_team
from tests.support.lakes import rows
from tests.support.mcp_servers import free_port

REPO = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, url: str, lake: Path, proc: subprocess.Popen[str], token: str | None = None) -> None:
        self.url, self.lake, self.proc, self.token = url, lake, proc, token


def _launch(folder: Path, env: dict[str, str], *extra: str, token: str | None = None,
            team_text: str = SERVED_TEAM) -> Served:
    team = folder / "team.yaml"
    team.write_text(team_text)
    port, lake = free_port(), folder / "lake"
    proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli", "a2a", "serve", str(team), "--local",
                             "--port", str(port), "--lake", str(lake), *extra],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Served(f"http://127.0.0.1:{port}/", lake, proc, token)


def _ready(served: Served) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{served.url}.well-known/agent-card.json", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if served.proc.poll() is not None or time.monotonic() > deadline:
            served.proc.kill()
            raise AssertionError(f"troupe a2a serve did not start: {served.proc.communicate()[1]}")
        time.sleep(0.1)


def _stop(served: Served) -> str:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGINT)
    _, err = served.proc.communicate(timeout=30)
    return err or ""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """The module's two servers, started side by side: ``open`` (no API keys; its team books tables through the
    repo's MCP test server, whose ``book`` tool asks a form) and ``keyed`` (a key of alice's)."""
    from troupe.runtime.access import KeyStore

    folders = {name: tmp_path_factory.mktemp(f"a2a-{name}") for name in ("open", "keyed")}
    token, _ = KeyStore(folders["keyed"] / "home" / "keys.json").create("alice", role="user")
    launched = {name: _launch(folder, _env(folder / "home"), token=token if name == "keyed" else None,
                              team_text=booking_served_team() if name == "open" else SERVED_TEAM)
                for name, folder in folders.items()}
    try:
        for served in launched.values():
            _ready(served)
        yield launched
    finally:
        for served in launched.values():
            if served.proc.poll() is None:
                served.proc.send_signal(signal.SIGINT)
        for served in launched.values():
            _stop(served)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TROUPE_HOME": str(home), "PYTHONPATH": str(REPO)}


def _client(python: Path, url: str, *scenarios: str, token: str | None = None) -> dict[str, Any]:
    out = subprocess.run([str(python), str(CLIENT_SCRIPT), url, *(["--token", token] if token else []), *scenarios],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.stdout)
    for name, part in report.items():
        assert "error" not in part, f"{name}: {part['error']}"
    return report


@dataclass
class Run:
    report: dict[str, Any]
    lake: Path
    marks: Path
    """Where the approval scenarios' tool writes its files (a file exists: the call ran)."""


ANSWERS = {"yes-words": "text:approve", "no-words": "text:no, not now", "yes-data": "data:true", "no-data": "data:false"}
BOOKINGS = {  # the answers sent, one after the other, on the task that asks the booking form
    "misfit": 'data:{"action": "accept", "content": {"name": "Ada", "seats": "many"}}|data:{"name": "Ada"}',
    "full": 'data:{"action": "accept", "content": {"name": "Bo", "seats": 4}, "reason": "for the team"}',
    "words": "text:maybe later|text:Decline.",
}


@pytest.fixture(scope="module")
def run(a2a_peer_python: Path, servers: dict[str, Served]) -> Run:
    """The open server's client tests: the client runs every scenario in one process, then the server stops (its
    sessions end and the lake has all their events)."""
    served = servers["open"]
    marks = served.lake.parent / "marks"
    marks.mkdir()
    try:
        report = _client(a2a_peer_python, served.url, "stream", f"say:write {marks / 'by-policy'} trusted",
                         *(f"{_kind(name)}:{marks / name}:{answer}" for name, answer in ANSWERS.items()),
                         *(f"book:{answers}" for answers in BOOKINGS.values()))
    finally:
        err = _stop(served)
    assert served.proc.returncode == 0, err[-3000:]
    return Run(report, served.lake, marks)


def test_a2a_client_streams_gets_artifacts_and_cancels(run: Run) -> None:
    report = run.report
    assert report["card"] == {"name": "greeter", "streaming": True, "skills": ["greeter", "helper"], "secured": False}
    stream = report["stream"]
    updates = stream["updates"]
    assert updates[0] == ["task", "submitted"] and updates[-1] == ["status", "completed", "echo: hello"]
    assert ["status", "working", "greeter calls blackboard_put"] in updates
    assert ["artifact", "notes/greeting", "hi there"] in updates and ["artifact", "reply", "echo: hello"] in updates
    assert stream["task"] == {"state": "completed", "artifacts": {"notes/greeting": "hi there", "reply": "echo: hello"}}
    assert stream["cancel"] == "canceled" and stream["cancelled_task"] == "canceled"
    assert stream["after_cancel"] == ["status", "completed", "echo: hello"]
    sessions = rows(run.lake, "SELECT session_id, status FROM events WHERE type = 'session.finished' ORDER BY ts")
    # tasks/cancel cancelled a turn, not its session: every conversation ended completed when the server stopped
    assert [r["status"] for r in sessions] == ["completed"] * (3 + len(ANSWERS) + len(BOOKINGS))
    turns = rows(run.lake, "SELECT session_id, type, status, json_extract_string(payload, '$.input') AS input FROM events "
                           "WHERE type IN ('turn.cancelled', 'turn.finished') AND session_id IN (SELECT session_id "
                           "FROM events WHERE type = 'turn.cancelled') ORDER BY seq")
    assert [(r["type"], r["input"]) for r in turns] == [("turn.cancelled", "sleep 30"), ("turn.finished", "hello")]
    puts = rows(run.lake, "SELECT count(*) AS n FROM events WHERE type = 'blackboard.put'")
    assert puts[0]["n"] == 2


def _kind(name: str) -> str:
    return "approve+intrude" if name == "no-words" else "approve"


def _scenario(run: Run, name: str) -> dict[str, Any]:
    return run.report[f"{_kind(name)}:{run.marks / name}:{ANSWERS[name]}"]


def test_an_approval_makes_the_task_input_required_with_what_is_asked(run: Run) -> None:
    first = _scenario(run, "yes-words")["first"]
    assert first[0] == ["task", "submitted"] and ["status", "working", "greeter calls write_mark"] in first
    kind, state, line, [asked] = first[-1]
    assert (kind, state) == ("status", "input_required") and "greeter wants to call write_mark" in line
    assert asked["tool"] == "write_mark" and asked["agent"] == "greeter" and asked["approval_id"]
    assert json.loads(asked["arguments"]) == {"path": str(run.marks / "yes-words")}
    assert asked["answer"] == {"approve": "boolean", "reason": "string (optional)"}


@pytest.mark.parametrize("name", ["yes-words", "yes-data"])
def test_an_approved_call_runs_and_the_task_completes(run: Run, name: str) -> None:
    scenario = _scenario(run, name)
    path = run.marks / name
    assert path.read_text() == "written"  # the side effect happened
    reply = f"write: wrote {path}"
    assert scenario["second"][-1] == ["status", "completed", reply], scenario["second"]
    assert scenario["state"] == "completed" and scenario["artifacts"] == {"reply": reply}
    why = "approve" if name == "yes-words" else "data says true"
    assert ["status", "working", f"approved by the A2A client (local): {why}"] in scenario["second"]
    decided = _decisions(run, path)
    assert decided == [("approved", "client", f"approved by the A2A client (local): {why}")]


@pytest.mark.parametrize("name", ["no-words", "no-data"])
def test_a_denied_call_does_not_run_and_the_task_completes_with_the_refusal(run: Run, name: str) -> None:
    scenario = _scenario(run, name)
    path = run.marks / name
    assert not path.exists()  # never ran
    why = "no, not now" if name == "no-words" else "data says false"
    reason = f"denied by the A2A client (local): {why}"
    last = scenario["second"][-1]
    assert last[:2] == ["status", "completed"] and "needs the user's approval and did not get it" in last[2]
    assert reason in last[2] and scenario["state"] == "completed"
    assert _decisions(run, path) == [("denied", "client", reason)]
    if name == "no-words":  # 'approve' sent as a new task of the context while this one waited: rejected, not used
        assert scenario["other"][-1][:2] == ["status", "rejected"] and "waiting for input" in scenario["other"][-1][2]
    denied = rows(run.lake, "SELECT tool, json_extract_string(payload, '$.reason') AS reason, "
                            "json_extract_string(payload, '$.error') AS error FROM events WHERE type = 'guardrail.denied'")
    assert {"tool": "write_mark", "reason": "approval", "error": reason} in denied


def test_an_approval_the_teams_policy_decides_asks_the_client_nothing(run: Run) -> None:
    path = run.marks / "by-policy"
    updates = run.report[f"say:write {path} trusted"]["updates"]
    assert [u[1] for u in updates if u[0] == "status"] == ["working", "working", "completed"], updates
    assert updates[-1][2] == f"write: wrote {path}" and path.read_text() == "written"
    found = rows(run.lake, "SELECT json_extract_string(payload, '$.by') AS by FROM events WHERE type = 'approval.decided'")
    assert [r["by"] for r in found].count("policy") == 1


def _decisions(run: Run, path: Path) -> list[tuple[str, str, str]]:
    """The ``approval.decided`` rows of the request to write ``path``: (status, by, reason)."""
    found = rows(run.lake, f"""
        SELECT d.status, json_extract_string(d.payload, '$.by') AS by, json_extract_string(d.payload, '$.reason') AS reason
        FROM events r JOIN events d ON d.type = 'approval.decided' AND d.session_id = r.session_id
          AND json_extract_string(d.payload, '$.id') = json_extract_string(r.payload, '$.id')
        WHERE r.type = 'approval.requested' AND r.payload LIKE '%marks/{path.name}%'""")
    return [(r["status"], r["by"], r["reason"]) for r in found]


def _booking(run: Run, name: str) -> dict[str, Any]:
    return run.report[f"book:{BOOKINGS[name]}"]


def test_an_elicitation_makes_the_task_input_required_with_the_form(run: Run) -> None:
    first = _booking(run, "full")["first"]
    assert first[0] == ["task", "submitted"] and ["status", "working", "greeter calls own__book"] in first
    kind, state, line, [form] = first[-1]
    assert (kind, state) == ("status", "input_required")
    assert "MCP server 'own' (in greeter's call of own__book) asks: Who is the booking for?" in line
    assert "name (string, required); seats (integer, default 2)" in line and '"decline"' in line
    assert (form["agent"], form["tool"], form["server"], form["mode"]) == ("greeter", "own__book", "own", "form")
    assert form["elicitation_id"] and form["message"] == "Who is the booking for?"
    assert [(f["name"], f["type"], f["required"], f.get("default")) for f in form["fields"]] == [
        ("name", "string", True, None), ("seats", "integer", False, 2)]
    assert form["requested_schema"]["properties"]["seats"]["default"] == 2
    assert form["answer"]["action"] == "accept | decline | cancel"


def _answered(run: Run) -> list[dict[str, Any]]:
    return rows(run.lake, "SELECT json_extract_string(payload, '$.action') AS action, "
                          "json_extract_string(payload, '$.by') AS by, json_extract_string(payload, '$.reason') AS reason, "
                          "json_extract(payload, '$.content_keys') AS keys FROM events WHERE type = 'elicitation.answered' "
                          "ORDER BY ts")


def test_a_data_part_fills_the_form_and_the_tool_gets_the_values(run: Run) -> None:
    full = _booking(run, "full")
    [reply] = full["replies"]
    assert ["status", "working", "accept by the A2A client (local): for the team"] in reply
    assert reply[-1] == ["status", "completed", "book: booked 4 seats for Bo"], reply
    assert full["state"] == "completed" and full["artifacts"] == {"reply": "book: booked 4 seats for Bo"}
    answered = _answered(run)
    assert {"action": "accept", "by": "client", "reason": "accept by the A2A client (local): for the team",
            "keys": '["name","seats"]'} in answered
    assert not any("Bo" in json.dumps(r) for r in rows(run.lake, "SELECT payload FROM events WHERE type LIKE 'elicit%'"))


def test_a_misfit_form_is_asked_again_and_the_next_answer_takes_the_defaults(run: Run) -> None:
    misfit, fixed = _booking(run, "misfit")["replies"]
    kind, state, line, [form] = misfit[-1]
    assert (kind, state) == ("status", "input_required") and len(misfit) == 1  # never sent to the session
    assert line.startswith("the answer does not fit the form: seats: 'many' is not of type 'integer'; answer again.")
    assert form["problem"].startswith("the answer does not fit the form") and form["fields"][0]["name"] == "name"
    assert fixed[-1] == ["status", "completed", "book: booked 2 seats for Ada"], fixed


def test_words_decline_the_form_and_other_words_are_asked_again(run: Run) -> None:
    words = _booking(run, "words")
    unclear, declined = words["replies"]
    assert unclear[-1][:2] == ["status", "input_required"] and "'maybe later' is not an answer" in unclear[-1][2]
    assert declined[-1] == ["status", "completed", "book: not booked (decline)"], declined
    assert {"action": "decline", "by": "client", "reason": "decline by the A2A client (local): Decline.",
            "keys": "[]"} in _answered(run)
    assert [r["by"] for r in _answered(run)] == ["client"] * len(BOOKINGS)  # none timed out


def test_with_api_keys_requests_need_a_bearer_key_and_the_card_says_so(a2a_peer_python: Path,
                                                                       servers: dict[str, Served]) -> None:
    served = servers["keyed"]
    mark = served.lake.parent / "alice-approved"
    try:
        card = httpx.get(f"{served.url}.well-known/agent-card.json", timeout=5).json()
        refused = httpx.post(served.url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
                             timeout=5)
        report = _client(a2a_peer_python, served.url, "hello", f"approve:{mark}:text:yes", token=served.token)
    finally:
        err = _stop(served)
    assert served.proc.returncode == 0, err[-3000:]
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert report["card"]["secured"] is True and report["hello"]["last"] == ["status", "completed", "echo: hello"]
    denied = rows(served.lake, "SELECT agent FROM events WHERE type = 'access.denied'")
    assert [r["agent"] for r in denied] == ["a2a"]
    owners = rows(served.lake, "SELECT json_extract_string(payload, '$.user') AS owner FROM events "
                               "WHERE type = 'session.started'")
    assert [r["owner"] for r in owners] == ["alice", "alice"]  # the key's user owns the contexts' sessions
    assert mark.read_text() == "written"  # and is named as who approved
    decided = rows(served.lake, "SELECT json_extract_string(payload, '$.reason') AS reason FROM events "
                                "WHERE type = 'approval.decided'")
    assert decided == [{"reason": "approved by the A2A client (alice): yes"}]


def test_a_non_loopback_bind_without_keys_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from troupe.runtime.cli.main import main

    team = tmp_path / "team.yaml"
    team.write_text(SERVED_TEAM)
    monkeypatch.setenv("TROUPE_HOME", str(tmp_path / "home"))
    code = main(["a2a", "serve", str(team), "--local", "--host", "0.0.0.0", "--port", str(free_port())])
    assert code == 2 and "without API keys" in capsys.readouterr().err
