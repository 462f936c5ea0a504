"""``troupe acp`` in Ray mode: the command starts a private Ray of its own (``--address local``: it never joins
another Ray on this machine) and stdout still carries JSON-RPC only, with Ray's processes running under it."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.acp_team import TEAM

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.private_ray


def _line(proc: subprocess.Popen[str], deadline: float, stderr: Path) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=max(0.0, deadline - time.monotonic())), (
            f"no answer in time; the command's stderr ends:\n{stderr.read_text(errors='replace')[-3000:]}")
    line = proc.stdout.readline()
    assert line, "stdout closed"
    return line


def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


@pytest.mark.timeout(300)  # a private Ray's start, 150 s at most under load, then the answer and the exit
def test_ray_mode_keeps_stdout_json_rpc_only(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(REPO)}
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli", "acp", str(team), "--address", "local",
                                 "--lake", str(tmp_path / "lake")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, cwd=REPO, env=env, start_new_session=True)
    lines: list[str] = []
    ray_processes: list[str] = []
    try:
        deadline = time.monotonic() + 150
        _send(proc, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}})
        lines.append(_line(proc, deadline, stderr))
        _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {"cwd": str(tmp_path), "mcpServers": []}})
        lines.append(_line(proc, deadline, stderr))
        session_id = json.loads(lines[-1])["result"]["sessionId"]
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "session/prompt",
                     "params": {"sessionId": session_id, "prompt": [{"type": "text", "text": "hi"}]}})
        while json.loads(lines[-1]).get("id") != 2:
            lines.append(_line(proc, deadline, stderr))
        ray_processes = [p.name() for p in psutil.Process(proc.pid).children(recursive=True)]
        assert proc.stdin is not None
        proc.stdin.close()
        lines += [line for line in proc.stdout.read().splitlines(keepends=True) if line]  # type: ignore[union-attr]
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the command's own process group: its private Ray with it
            proc.wait(timeout=30)
    assert any("raylet" in name or "gcs_server" in name for name in ray_processes), ray_processes
    messages = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(m["jsonrpc"] == "2.0" for m in messages)
    assert messages[-1]["id"] == 2 and messages[-1]["result"]["stopReason"] == "end_turn"
    chunks = [m["params"]["update"]["content"]["text"] for m in messages if m.get("method") == "session/update"
              and m["params"]["update"]["sessionUpdate"] == "agent_message_chunk"]
    assert "".join(chunks) == "echo: hi"
