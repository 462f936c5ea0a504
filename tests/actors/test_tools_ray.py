"""The scheduler on Ray: I/O tools on node workers, CPU tools as Ray tasks with their resources,
cluster-wide caps, timeouts and cancellation that stop the remote work, retries."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.runtime.teams import call, team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = pytest.mark.ray
FIX = "tests.support.tool_fixtures"


async def _appears(path: Path, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return path.exists()


def lead_calls(tools: list[str], calls: list[dict[str, Any]], reply: str = "finished", **extra: Any) -> Any:
    return team([{"id": "lead", "tools": [f"{FIX}:{t}" for t in tools], "permissions": {"level": "L2"}}],
                scripts={"lead": [{"tool_calls": calls}, {"text": reply}]}, **extra)


def results(lake: Path, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, tool, duration_ms, payload from events where session_id='{session_id}' "
           "and type in ('tool.result', 'tool.error') order by json_extract_string(payload, '$.id')")
    return [{**r, **json.loads(r.pop("payload"))} for r in query(lake, sql).to_pylist()]


async def test_io_tools_fan_out_on_the_node_worker(troupe_ray: Troupe, lake: Path, tmp_path: Path) -> None:
    n = 8
    calls = [call("io_wait", seconds=0.5, folder=str(tmp_path), tag=f"c{i}") for i in range(n)]
    result = await troupe_ray.run(lead_calls(["io_wait"], calls), "go", timeout=60, placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    outs = results(lake, result.session_id)
    assert [o["type"] for o in outs] == ["tool.result"] * n
    pids = {(tmp_path / f"c{i}.start").read_text() for i in range(n)}
    assert len(pids) == 1  # one async worker on this node ran them all ...
    info = await troupe_ray.backend.scheduler.describe.remote()
    # ... at once, not one after another: all n were in flight together (the scheduler's own count; a wall-clock
    # bound would measure the machine's load, not the fan-out)
    assert info["io_workers"] == 1 and info["tools"]["io_wait"]["peak"] == n


async def test_cpu_tool_runs_as_a_ray_task_with_its_resources(troupe_ray: Troupe, lake: Path) -> None:
    cfg = lead_calls(["where_am_i", "needs_gpu"], [call("where_am_i"), call("needs_gpu")])
    result = await troupe_ray.run(cfg, "go", timeout=60, placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    ok, gpu = results(lake, result.session_id)
    where = json.loads(ok["result"])
    assert where["resources"] == {"CPU": 0.5, "troupe_test": 1.0}
    assert where["task"] == "tool:where_am_i"
    assert gpu["type"] == "tool.error" and "no node of this cluster has" in gpu["result"]


async def test_caps_hold_across_hosts(troupe_ray: Troupe, tmp_path: Path) -> None:
    log = tmp_path / "capped.jsonl"
    cfg = lead_calls(["capped"], [call("capped", seconds=0.3, log=str(log)) for _ in range(3)])
    sessions = [await troupe_ray.open(cfg, placement="packed") for _ in range(2)]
    hosts = {id(troupe_ray.backend._placed(s.id).host) for s in sessions}
    assert len(hosts) == 2  # two host processes share one scheduler
    outcomes = await asyncio.gather(*(s.run("go", timeout=60) for s in sessions))
    for s in sessions:
        await s.close()
    assert all(r.status is SessionStatus.COMPLETED for r in outcomes)
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(spans) == 6
    # Most calls running at one moment: at each call's start, the calls that had started and not yet ended (a call
    # can overlap more than two others one after another, under load, with never more than two at once).
    at_once = max(sum(1 for o in spans if o["start"] <= s["start"] < o["end"]) for s in spans)
    assert at_once <= 2, spans


async def test_timeout_and_cancel_stop_the_remote_work(troupe_ray: Troupe, lake: Path, tmp_path: Path) -> None:
    # The node's tool worker first: its start (a process, up to seconds on a busy machine) must not
    # eat the 0.5 s timeout, which is about the tool's own run.
    warm = lead_calls(["io_wait"], [call("io_wait", seconds=0, folder=str(tmp_path), tag="w")])
    assert (await troupe_ray.run(warm, "go", timeout=60, placement="packed")).ok
    cfg = lead_calls(["hang"], [call("hang", folder=str(tmp_path), tag="t")])
    result = await troupe_ray.run(cfg, "go", timeout=60, placement="packed")
    [out] = results(lake, result.session_id)
    assert out["type"] == "tool.error" and "timed out after 0.5s" in out["result"]
    assert await _appears(tmp_path / "t.cancelled"), "the timed-out call kept running on the worker"
    assert not (tmp_path / "t.done").exists()

    cfg = lead_calls(["io_wait"], [call("io_wait", seconds=30, folder=str(tmp_path), tag="c")])
    session = await troupe_ray.open(cfg, placement="packed")
    await session.send("go")
    deadline = time.monotonic() + 30
    while not (tmp_path / "c.start").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await session.cancel("stop")
    assert await _appears(tmp_path / "c.cancelled"), "the tool kept running after the session was cancelled"
    assert (await session.result(timeout=10)).status is SessionStatus.CANCELLED
    await session.close()


async def test_idempotent_tool_retries_on_the_worker(troupe_ray: Troupe, lake: Path, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    cfg = lead_calls(["flaky"], [call("flaky", counter=str(counter), fail_times=2)])
    result = await troupe_ray.run(cfg, "go", timeout=60, placement="packed")
    [out] = results(lake, result.session_id)
    assert out["type"] == "tool.result" and out["result"] == "ok after 3 attempts"
    assert counter.read_text() == "3"


async def test_scheduler_is_named_per_runtime_and_released(troupe_ray: Troupe, tmp_path: Path) -> None:
    await troupe_ray.run(lead_calls(["io_wait"], [call("io_wait", seconds=0, folder=str(tmp_path), tag="x")]), "go",
                         timeout=60, placement="packed")
    mine = troupe_ray.backend.scheduler_name
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert mine in names and any(n.startswith(mine.replace("scheduler-", "tools-")[:14]) for n in names)
    await troupe_ray.shutdown()
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert mine not in names


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["y", "n"])
def test_cli_prompts_for_approval_on_stdin(lake: Path, tmp_path: Path, answer: str) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    target = tmp_path / "approved.txt"
    team_file = tmp_path / "team.yaml"
    team_file.write_text(yaml.safe_dump({
        "name": "ask", "entry": "lead", "default_model": "m", "placement": "packed",
        "models": {"m": {"provider": "scripted", "scripts": {"lead": [
            {"tool_calls": [{"name": "approved_write", "arguments": {"path": str(target)}}]}, {"text": "finished"}]}}},
        "agents": [{"id": "lead", "tools": [f"{FIX}:approved_write"]}],
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "troupe.runtime.cli.main", "run", str(team_file), "--input", "go", "--approve", "ask",
         "--address", ray.get_runtime_context().gcs_address],
        cwd=REPO, env={**os.environ, "TROUPE_LAKE": str(lake)}, input=f"{answer}\n", capture_output=True, text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wants to call approved_write" in proc.stderr and "allow? [y/N]" in proc.stderr
    assert target.exists() is (answer == "y")
    decided = "approved" if answer == "y" else "denied"
    assert f"approval approved_write {decided} by client" in proc.stderr
