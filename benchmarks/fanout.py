"""Fan-out of one agent turn's tool calls through the scheduler, against the ideal parallel time.

* I/O-bound: one turn asks for N calls of a tool that waits 0.5 s (a coroutine on the node's tool
  worker). Ideal: 0.5 s. Measured from the turn's first ``tool.call`` to its last result event.
* CPU-bound: one turn asks for M calls of a tool that spins for a fixed amount of work (a Ray task
  with ``num_cpus=1``). Ideal: the work the calls report (their own compute seconds) / cores.
* MCP per-call overhead: ``echo`` on our own MCP server (benchmarks/support/echo_mcp.py) over stdio and streamable HTTP,
  called (a) with the ``mcp`` package's own client, (b) through Troupe's MCP manager, and (c) as a
  tool call of an agent in a session on Ray (policy, risk scoring, events, one hop to the node's MCP actor);
  ``--mcp-reps`` rounds alternating between the three, medians reported (target: (c) at most 3 ms over (a)
  on stdio). (c) is the ``tool.result`` event's ``duration_ms``: from the call's policy checks to its result.

Ends with one JSON line of figures. Run from the repository root:

    python -m benchmarks.fanout [--io-calls 100] [--cpu-calls 16] [--mcp-calls 200] [--mcp-reps 5]
                                [--parts io,cpu,mcp] [--smoke]   (or python benchmarks/fanout.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, parse_team
from troupe.runtime.eventlog.lake import query
from troupe.tools.spec import tool

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import REPO, parse_args

IO_WAIT_S = 0.5
SPIN = 10_000_000
"""The work of one CPU-bound call (about 1 s here): a sum of this many squares."""


@tool(timeout_s=30)
async def io_sleep(seconds: float) -> str:
    """Wait like a slow API would."""
    await asyncio.sleep(seconds)
    return "ok"


@tool(resources={"num_cpus": 1}, timeout_s=300)
def spin(n: int) -> float:
    """Burn CPU (a sum of squares); returns the seconds of work it did."""
    started = time.perf_counter()
    sum(i * i for i in range(n))
    return time.perf_counter() - started


def _team(tool_path: str, calls: list[dict[str, Any]], **agent: Any) -> Any:
    return parse_team({
        "name": "fanout", "entry": "lead", "default_model": "m", "placement": "packed",
        "models": {"m": {"provider": "scripted", "scripts": {"lead": [{"tool_calls": calls}, {"text": "done"}]}}},
        "agents": [{"id": "lead", "tools": [tool_path], "permissions": {"level": "L2"}, **agent}],
    })


def _tool_phase_s(lake: str, session_id: str) -> float:
    [row] = query(lake, f"""
        select epoch_ms(max(ts) filter (where type in ('tool.result','tool.error')))
             - epoch_ms(min(ts) filter (where type = 'tool.call')) as ms,
               count(*) filter (where type = 'tool.result') as ok
        from events where session_id = '{session_id}'""").to_pylist()
    return row["ms"] / 1e3, row["ok"]


async def io_batch(troupe: Troupe, n: int) -> dict[str, Any]:
    calls = [{"name": "io_sleep", "arguments": {"seconds": IO_WAIT_S}} for _ in range(n)]
    result = await troupe.run(_team("benchmarks.fanout:io_sleep", calls), "go", timeout=120)
    await troupe.backend.log.flush.remote()
    wall, ok = _tool_phase_s(troupe.lake, result.session_id)
    return {"calls": n, "ok": ok, "ideal_s": IO_WAIT_S, "wall_s": round(wall, 3), "ratio": round(wall / IO_WAIT_S, 2)}


async def cpu_batch(troupe: Troupe, n: int, cores: int, spin_n: int = SPIN) -> dict[str, Any]:
    calls = [{"name": "spin", "arguments": {"n": spin_n}} for _ in range(n)]
    await troupe.run(_team("benchmarks.fanout:spin", calls[:cores]), "go", timeout=300)  # start the task workers
    many = await troupe.run(_team("benchmarks.fanout:spin", calls), "go", timeout=600)
    await troupe.backend.log.flush.remote()
    wall, ok = _tool_phase_s(troupe.lake, many.session_id)
    work = sum(float(r["result"]) for r in query(troupe.lake, f"""
        select json_extract_string(payload, '$.result') result from events
        where session_id = '{many.session_id}' and type = 'tool.result'""").to_pylist())
    ideal = work / cores
    return {"calls": n, "ok": ok, "cores": cores, "one_call_s": round(work / max(ok, 1), 3), "ideal_s": round(ideal, 3),
            "wall_s": round(wall, 3), "ratio": round(wall / ideal, 2)}


# --- MCP ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _servers() -> tuple[dict[str, McpServerConfig], subprocess.Popen[bytes]]:
    port = _free_port()
    http = subprocess.Popen([sys.executable, "-m", "benchmarks.support.echo_mcp", "--http", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    stdio = McpServerConfig(command=sys.executable, args=["-m", "benchmarks.support.echo_mcp", "--stdio"], cwd=str(REPO))
    return {"stdio": stdio, "http": McpServerConfig(url=f"http://127.0.0.1:{port}/mcp")}, http


async def _raw_ms(cfg: McpServerConfig, n: int) -> float:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    async def calls(session: ClientSession) -> float:
        await session.initialize()
        await session.call_tool("echo", {"text": "warm"})
        started = time.perf_counter()
        for i in range(n):
            await session.call_tool("echo", {"text": f"x{i}"})
        return (time.perf_counter() - started) / n * 1e3

    if cfg.command:
        params = StdioServerParameters(command=cfg.command, args=cfg.args, cwd=cfg.cwd)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await calls(session)
    async with streamable_http_client(cfg.url) as (read, write), ClientSession(read, write) as session:
        return await calls(session)


async def _manager_ms(cfg: McpServerConfig, name: str, n: int) -> float:
    from troupe.tools.mcp import McpManager

    manager = McpManager()
    try:
        await manager.call(name, cfg, "echo", {"text": "warm"})
        started = time.perf_counter()
        for i in range(n):
            await manager.call(name, cfg, "echo", {"text": f"x{i}"})
        return (time.perf_counter() - started) / n * 1e3
    finally:
        await manager.close()


async def _session_ms(troupe: Troupe, cfg: McpServerConfig, name: str, n: int) -> float:
    """Per call, one call per LLM round (sequential), minus the same session's LLM-round overhead."""
    calls = [{"tool_calls": [{"name": f"{name}__echo", "arguments": {"text": f"x{i}"}}]} for i in range(n)]
    team = parse_team({
        "name": "mcp", "entry": "lead", "default_model": "m", "placement": "packed",
        "mcpServers": {name: cfg.model_dump()},
        "models": {"m": {"provider": "scripted", "scripts": {"lead": [*calls, {"text": "done"}]}}},
        "agents": [{"id": "lead", "tools": [f"{name}__echo"], "permissions": {"level": "L2"}, "max_rounds": n + 1}],
    })
    result = await troupe.run(team, "go", timeout=300)
    await troupe.backend.log.flush.remote()
    [row] = query(troupe.lake, f"""
        select median(duration_ms) ms, count(*) n from events
        where session_id = '{result.session_id}' and type = 'tool.result'""").to_pylist()
    return float(row["ms"])


async def mcp_overhead(troupe: Troupe, n: int, reps: int = 1) -> dict[str, Any]:
    """Per call, for each transport: the bare ``mcp`` client, Troupe's manager and an agent's tool call in a
    session, ``reps`` rounds alternating between the three (the machine may be shared: medians of the rounds)."""
    servers, http = _servers()
    rounds: dict[str, dict[str, list[float]]] = {name: {"raw": [], "manager": [], "agent": []} for name in servers}
    try:
        for _ in range(reps):
            for name, cfg in servers.items():
                rounds[name]["raw"].append(await _raw_ms(cfg, n))
                rounds[name]["manager"].append(await _manager_ms(cfg, name, n))
                rounds[name]["agent"].append(await _session_ms(troupe, cfg, name, min(n, 50)))
    finally:
        http.terminate()
        http.wait(10)
    out: dict[str, Any] = {}
    for name, r in rounds.items():
        raw, managed, agent = (statistics.median(r[k]) for k in ("raw", "manager", "agent"))
        out[name] = {"raw_ms": round(raw, 2), "manager_ms": round(managed, 2), "agent_tool_call_ms": round(agent, 2),
                     "manager_overhead_ms": round(managed - raw, 2), "agent_overhead_ms": round(agent - raw, 2),
                     "rounds": {k: [round(v, 2) for v in vs] for k, vs in r.items()}}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--io-calls", type=int, default=100)
    parser.add_argument("--cpu-calls", type=int, default=16)
    parser.add_argument("--mcp-calls", type=int, default=200)
    parser.add_argument("--mcp-reps", type=int, default=5, help="rounds of the MCP figures (medians are reported)")
    parser.add_argument("--spin", type=int, default=SPIN, help="the work of one CPU-bound call")
    parser.add_argument("--parts", default="io,cpu,mcp", help="which parts to run (comma-separated)")
    args = parse_args(parser, smoke={"io_calls": 4, "cpu_calls": 2, "mcp_calls": 5, "mcp_reps": 1, "spin": 100_000})
    parts = set(args.parts.split(","))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as lake:
        troupe = await Troupe.connect(lake=lake, address="local", num_cpus=cores, log_to_driver=False)
        try:
            figures: dict[str, Any] = {}
            if "io" in parts:
                await io_batch(troupe, 4)  # warm the worker
                figures["io"] = await io_batch(troupe, args.io_calls)
            if "cpu" in parts:
                figures["cpu"] = await cpu_batch(troupe, args.cpu_calls, cores, args.spin)
            if "mcp" in parts:
                figures["mcp"] = await mcp_overhead(troupe, args.mcp_calls, args.mcp_reps)
        finally:
            await troupe.shutdown()
            if ray.is_initialized():
                ray.shutdown()
    if (io := figures.get("io")) is not None:
        print(f"I/O  {io['calls']} x {IO_WAIT_S}s: {io['wall_s']:.2f}s = {io['ratio']}x ideal (target <= 1.5x)")
    if (cpu := figures.get("cpu")) is not None:
        print(f"CPU  {cpu['calls']} x {cpu['one_call_s']:.2f}s on {cpu['cores']} cores: {cpu['wall_s']:.2f}s = "
              f"{cpu['ratio']}x ideal ({cpu['ideal_s']:.2f}s)")
    for name, m in figures.get("mcp", {}).items():
        print(f"MCP {name:5}: bare mcp client {m['raw_ms']} ms/call, Troupe manager {m['manager_ms']} ms, as an agent's "
              f"tool call in a session {m['agent_tool_call_ms']} ms = {m['agent_overhead_ms']} ms over the bare client"
              + (" (target <= 3 ms)" if name == "stdio" else "") + f"; medians of {len(m['rounds']['raw'])} rounds")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
