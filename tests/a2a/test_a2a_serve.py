"""``troupe a2a serve``: a real A2A client (a2a-sdk, from a venv of its own) reads the card of a scripted team,
streams a task to completion, gets it with its artifacts (the reply and the blackboard entry), and cancels a
second, long task; the session and access refusals are in the lake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.a2a_peers import CLIENT_SCRIPT
from tests.support.a2a_teams import SERVED_TEAM
from tests.support.lakes import rows
from tests.support.mcp_servers import free_port

REPO = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, url: str, lake: Path, proc: subprocess.Popen[str]) -> None:
        self.url, self.lake, self.proc = url, lake, proc


def _start(tmp_path: Path, env: dict[str, str], *extra: str) -> Served:
    team = tmp_path / "team.yaml"
    team.write_text(SERVED_TEAM)
    port, lake = free_port(), tmp_path / "lake"
    proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli", "a2a", "serve", str(team), "--local",
                             "--port", str(port), "--lake", str(lake), *extra],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}.well-known/agent-card.json", timeout=1).status_code == 200:
                return Served(url, lake, proc)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"troupe a2a serve did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)


def _stop(served: Served) -> str:
    served.proc.send_signal(signal.SIGINT)
    _, err = served.proc.communicate(timeout=30)
    return err


@pytest.fixture
def home_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "TROUPE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    yield env


def test_a2a_client_streams_gets_artifacts_and_cancels(a2a_peer_python: Path, tmp_path: Path,
                                                       home_env: dict[str, str]) -> None:
    served = _start(tmp_path, home_env)
    try:
        out = subprocess.run([str(a2a_peer_python), str(CLIENT_SCRIPT), served.url], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    finally:
        err = _stop(served)
    assert out.returncode == 0, out.stderr[-3000:]
    assert served.proc.returncode == 0, err[-3000:]
    report = json.loads(out.stdout)
    assert report["card"] == {"name": "greeter", "streaming": True, "skills": ["greeter", "helper"], "secured": False}
    updates = report["updates"]
    assert updates[0] == ["task", "submitted"] and updates[-1] == ["status", "completed", "echo: hello"]
    assert ["status", "working", "greeter calls blackboard_put"] in updates
    assert ["artifact", "notes/greeting", "hi there"] in updates and ["artifact", "reply", "echo: hello"] in updates
    assert report["task"] == {"state": "completed", "artifacts": {"notes/greeting": "hi there", "reply": "echo: hello"}}
    assert report["cancel"] == "canceled" and report["cancelled_task"] == "canceled"
    sessions = rows(served.lake, "SELECT session_id, status FROM events WHERE type = 'session.finished' ORDER BY ts")
    assert sorted(r["status"] for r in sessions) == ["cancelled", "completed"]  # the cancelled one; the conversation at exit
    replies = rows(served.lake, "SELECT count(*) AS n FROM events WHERE type = 'blackboard.put'")
    assert replies[0]["n"] == 1


def test_with_api_keys_requests_need_a_bearer_key_and_the_card_says_so(a2a_peer_python: Path, tmp_path: Path,
                                                                       home_env: dict[str, str]) -> None:
    from troupe.runtime.access import KeyStore

    token, _ = KeyStore(Path(home_env["TROUPE_HOME"]) / "keys.json").create("alice", role="user")
    served = _start(tmp_path, home_env)
    try:
        card = httpx.get(f"{served.url}.well-known/agent-card.json", timeout=5).json()
        refused = httpx.post(served.url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
                             timeout=5)
        out = subprocess.run([str(a2a_peer_python), str(CLIENT_SCRIPT), served.url, token], capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        _stop(served)
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["card"]["secured"] is True
    denied = rows(served.lake, "SELECT agent FROM events WHERE type = 'access.denied'")
    assert [r["agent"] for r in denied] == ["a2a"]


def test_a_non_loopback_bind_without_keys_is_refused(tmp_path: Path, home_env: dict[str, str]) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(SERVED_TEAM)
    out = subprocess.run([sys.executable, "-m", "troupe.runtime.cli", "a2a", "serve", str(team), "--local",
                          "--host", "0.0.0.0", "--port", str(free_port())], cwd=REPO, env=home_env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "without API keys" in out.stderr
