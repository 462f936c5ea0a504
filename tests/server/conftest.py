"""A real server on 127.0.0.1 (uvicorn in a thread of the test process, local placement) and team files."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from troupe.runtime.server.app import build_app
from troupe.runtime.server.settings import ServerSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_teams(folder: Path, target: Path) -> None:
    def team(name: str, agents: list[dict[str, Any]], scripts: dict[str, Any]) -> None:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "team.yaml").write_text(yaml.safe_dump({
            "name": name, "entry": agents[0]["id"], "default_model": "m",
            "models": {"m": {"provider": "scripted", "scripts": scripts}}, "agents": agents}))

    team("echo", [{"id": "lead", "role": "answers"}], {"lead": [{"text": "hello back"}]})
    team("gated", [{"id": "lead", "tools": ["tests.support.tool_fixtures:approved_write"], "permissions": {"level": "L1"}}],
         {"lead": [{"tool_calls": [{"name": "approved_write", "arguments": {"path": str(target)}}]},
                   {"tool_calls": [{"name": "blackboard_put", "arguments": {"key": "notes/a", "value": "x"}}]},
                   {"text": "finished"}]})
    # gated2: the lead holds on an approval, with the blackboard and a task to read meanwhile
    team("board", [{"id": "lead", "tools": ["blackboard_put", "task_create",
                                            "tests.support.tool_fixtures:approved_write"], "permissions": {"level": "L1"}}],
         {"lead": [{"tool_calls": [{"name": "blackboard_put", "arguments": {"key": "plan/step", "value": "one"}}]},
                   {"tool_calls": [{"name": "task_create", "arguments": {"goal": "write the file"}}]},
                   {"tool_calls": [{"name": "approved_write", "arguments": {"path": str(target)}}]},
                   {"text": "done"}]})


@dataclass
class LiveServer:
    url: str
    lake: Path
    client: httpx.Client

    def sse(self, path: str, headers: dict[str, str] | None = None, stop: Any = None,
            timeout: float = 30.0) -> list[dict[str, Any]]:
        """Frames of an SSE stream (each ``{"id", "event", "data"}``) until it ends or ``stop(frame)``."""
        frames: list[dict[str, Any]] = []
        with self.client.stream("GET", path, headers=headers or {}, timeout=timeout) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("text/event-stream")
            current: dict[str, Any] = {}
            for line in r.iter_lines():
                if line.startswith(":"):
                    continue
                if not line:
                    if current:
                        if "data" in current:
                            current["data"] = json.loads(current["data"])
                        frames.append(current)
                        if current.get("event") == "end" or (stop and stop(current)):
                            return frames
                    current = {}
                    continue
                key, _, value = line.partition(": ")
                current[key] = value
        return frames


def serve_in_thread(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    """``app`` under uvicorn on 127.0.0.1 and a free port, in a daemon thread, once it has started; its URL.
    Stop it with ``uv.should_exit = True`` and ``thread.join(30)``."""
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return uv, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    teams = tmp_path / "teams"
    write_teams(teams, tmp_path / "approved.txt")
    lake = tmp_path / "lake"
    settings = ServerSettings(local=True, lake=str(lake), teams=[str(teams)])
    uv, thread, url = serve_in_thread(build_app(settings))
    with httpx.Client(base_url=url + "/api/v1", timeout=30) as client:
        yield LiveServer(url=url, lake=lake, client=client)
    uv.should_exit = True
    thread.join(30)
