"""``troupe acp``'s stdout is the protocol only: a team whose model prints to stdout, a run spoken to in raw
JSON-RPC lines; every line on stdout is a JSON-RPC message, and the print lands on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.acp_team import TEAM

REPO = Path(__file__).resolve().parents[2]


def test_stdout_holds_json_rpc_only(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM)
    requests = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}},
        {"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {"cwd": str(tmp_path), "mcpServers": []}},
    ]
    proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli", "acp", str(team), "--local", "--lake",
                             str(tmp_path / "lake")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    try:
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            lines.append(proc.stdout.readline())
        session_id = json.loads(lines[-1])["result"]["sessionId"]
        prompt = {"jsonrpc": "2.0", "id": 2, "method": "session/prompt",
                  "params": {"sessionId": session_id, "prompt": [{"type": "text", "text": "hi"}]}}
        proc.stdin.write(json.dumps(prompt) + "\n")
        proc.stdin.flush()
        while not lines or json.loads(lines[-1]).get("id") != 2:
            lines.append(proc.stdout.readline())
            assert lines[-1], "stdout closed before the prompt's answer"
        proc.stdin.close()
        lines += [line for line in proc.stdout.read().splitlines(keepends=True) if line]  # until it exits
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    messages = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(m["jsonrpc"] == "2.0" for m in messages)
    assert messages[-1]["result"]["stopReason"] == "end_turn"
    chunks = [m["params"]["update"]["content"]["text"] for m in messages if m.get("method") == "session/update"]
    assert "".join(chunks) == "echo: hi"
    assert "a model function printing to stdout" in err
