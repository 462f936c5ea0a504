"""Per-session environments on Ray: a packed sweep over ``scope: session`` MCP servers leaves no
server process behind, and ordered calls (``sequential: true``, ``parallel_tool_calls: false``) reach
the server in call order, though they pass through the scheduler and node MCP actors."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.support.processes import processes_with
from tests.runtime.teams import call
from tests.support.state_mcp_server import command
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def team(server: dict[str, Any], script: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    agent = {"id": "lead", "tools": ["kv__*"], "permissions": {"level": "L2"}, **extra.pop("agent", {})}
    return {"name": "env", "entry": "lead", "default_model": "m", "placement": "packed", "mcpServers": {"kv": server},
            "models": {"m": {"provider": "scripted", "scripts": {"lead": script}}}, "agents": [agent], **extra}


async def test_a_packed_sweep_over_session_servers_leaves_no_server_alive(troupe_ray: Troupe, tmp_path: Path) -> None:
    marker = f"envsweep-{uuid.uuid4().hex[:8]}"
    samples = tmp_path / "samples"
    server = {**command("--marker", marker, "--state-dir", "${sample_dir}"), "scope": "session"}
    script = [{"tool_calls": [call("kv__incr", key="n")]}, {"tool_calls": [call("kv__incr", key="n")]}, {"text": "done"}]
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "team.yaml").write_text(yaml.safe_dump(team(server, script, environment={
        "sample_dir": str(samples), "teardown": "tests.support.env_hooks:capture"})))
    cases = [{"id": f"c{i}", "input": f"go {i}", "expect": {"contains": "done"}} for i in range(4)]
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": "env", "team": "team.yaml", "cases": "cases.jsonl",
                                                       "samples": 3, "timeout_s": 60}))
    progress = await Sweep(troupe_ray, load_suite(folder / "suite.yaml"), concurrency=8).run()
    assert progress.done == 12
    assert processes_with(marker) == [], "server processes outlived their sessions"
    states = [json.loads((d / "state.json").read_text()) for d in samples.iterdir()]
    assert len(states) == 12 and all(s == {"n": 2} for s in states)  # each sample counted on its own server
    assert all((d / "torn_down").exists() for d in samples.iterdir())


@pytest.mark.timeout(400)  # 50 sessions: 77 s at CI load, 99 s with one more busy core
async def test_ordered_calls_arrive_in_order_50_of_50_times(troupe_ray: Troupe, tmp_path: Path) -> None:
    calls = [{"tool_calls": [call("kv__record", n=k) for k in range(6)]}, {"text": "done"}]
    sequential = parse_team(team({**command("--log", "${sample_dir}/arrivals.log"), "scope": "session", "sequential": True},
                                 calls, environment={"sample_dir": str(tmp_path / "seq")}))
    log = tmp_path / "serial.log"
    serial = parse_team(team(command("--log", str(log)), calls, agent={"parallel_tool_calls": False}))
    gate = asyncio.Semaphore(8)

    async def one() -> Any:
        async with gate:
            return await troupe_ray.run_packed(sequential, "go", timeout=60)

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert all(r.status is SessionStatus.COMPLETED for r in results), [r.error for r in results if r.error]
    orders = [(tmp_path / "seq" / str(r.session_id) / "arrivals.log").read_text().split() for r in results]
    assert orders == [[str(k) for k in range(6)]] * 50
    for _ in range(50):  # one node-scoped server, one session at a time: the log is this session's
        log.unlink(missing_ok=True)
        result = await troupe_ray.run_packed(serial, "go", timeout=60)
        assert result.status is SessionStatus.COMPLETED, result.error
        assert log.read_text().split() == [str(k) for k in range(6)]
