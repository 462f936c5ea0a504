"""A sweep closes the node-scoped MCP connections nobody is using when it ends (their stdio servers
exit then, not ``idle_close_s`` after their last call), and leaves a server that another session is
calling alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from benchmarks.support.processes import processes_with
from tests.runtime.teams import call
from tests.support.state_mcp_server import command
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, parse_team
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.mcp import McpManager


def alive(marker: str) -> int:
    return len(processes_with(marker))


def team(server: dict[str, Any], script: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "idle", "entry": "lead", "default_model": "m", "mcpServers": {"kv": server},
            "models": {"m": {"provider": "scripted", "scripts": {"lead": script}}},
            "agents": [{"id": "lead", "tools": ["kv__*"], "permissions": {"level": "L2"}}]}


def suite(folder: Path, server: dict[str, Any], n: int) -> Path:
    folder.mkdir()
    (folder / "team.yaml").write_text(yaml.safe_dump(team(server, [{"tool_calls": [call("kv__incr", key="n")]},
                                                                   {"text": "done"}])))
    (folder / "cases.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": "go", "expect": {"contains": "done"}})
                                                + "\n" for i in range(n)))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": folder.name, "team": "team.yaml", "cases": "cases.jsonl"}))
    return folder / "suite.yaml"


async def test_a_sweep_over_a_node_scoped_server_leaves_no_server_process(troupe: Troupe, tmp_path: Path) -> None:
    marker = f"idlesweep-{uuid.uuid4().hex[:8]}"
    progress = await Sweep(troupe, load_suite(suite(tmp_path / "s", command("--marker", marker), 6)), concurrency=3).run()
    assert progress.passed == 6
    assert alive(marker) == 0, "the sweep's idle node-scoped server outlived it"


async def test_a_server_another_session_is_calling_stays_open(troupe: Troupe, tmp_path: Path) -> None:
    marker = f"idlebusy-{uuid.uuid4().hex[:8]}"
    server = command("--marker", marker)
    busy = parse_team(team(server, [{"tool_calls": [call("kv__wait", seconds=4)]}, {"text": "waited"}]))
    other = asyncio.create_task(troupe.run(busy, "wait", timeout=60))
    for _ in range(200):  # the other session's call is on the server
        if alive(marker):
            break
        await asyncio.sleep(0.05)
    progress = await Sweep(troupe, load_suite(suite(tmp_path / "s", server, 3)), concurrency=3).run()
    assert progress.passed == 3
    assert not other.done() and alive(marker) == 1, "the sweep closed a server with a call in flight"
    result = await other
    assert result.status is SessionStatus.COMPLETED and result.reply == "waited", result.error
    assert await troupe.close_idle_mcp() == 1 and alive(marker) == 0


async def test_close_idle_closes_only_idle_node_scoped_connections(tmp_path: Path) -> None:
    marker = f"idlemgr-{uuid.uuid4().hex[:8]}"
    manager = McpManager()
    busy, idle = (McpServerConfig.model_validate(command("--marker", f"{marker}-{k}")) for k in ("busy", "idle"))
    own = McpServerConfig.model_validate({**command("--marker", f"{marker}-own"), "scope": "session"})
    try:
        await asyncio.gather(manager.list_tools("idle", idle), manager.list_tools("own", own, "s1"))
        call_task = asyncio.create_task(manager.call("busy", busy, "wait", {"seconds": 1.5}))
        while not alive(f"{marker}-busy") or "busy" not in manager.describe()["servers"] \
                or not manager.describe()["servers"]["busy"]["in_flight"]:
            await asyncio.sleep(0.05)
        assert await manager.close_idle() == 1
        assert [alive(f"{marker}-{k}") for k in ("busy", "idle", "own")] == [1, 0, 1]
        assert "waited" in str(await call_task)
        assert await manager.close_idle() == 1 and alive(f"{marker}-busy") == 0
        assert alive(f"{marker}-own") == 1  # a session's own server closes with its session
    finally:
        await manager.close()
    assert alive(marker) == 0
