"""An eval sweep at scale: N samples of a 3-agent team whose deterministic model waits 50 ms per call.

The team: ``lead`` hands one task each to ``a`` and ``b`` (``assign_tasks``), they answer, and the
lead answers the user: 4 LLM calls per sample, 3 of them on the critical path (lead, a worker,
lead), so a sample takes at least 150 ms. The latency-bound ideal for N samples at concurrency C is
ceil(N / C) x 150 ms. Reports samples per second, the runtime's CPU time per sample (this process
plus every Ray worker of the run, from /proc), and the wall time as a ratio to that ideal.

The environment case (issue #13): ``--env-samples`` samples at ``--env-concurrency``, each with its
own stateful MCP server process (``scope: session``, benchmarks/support/state_mcp_server.py, state in
the sample's ``${sample_dir}``) and a simulated user for 3 turns; each turn the lead adds one to a
counter on its server and answers with the count, so a sample passes only if it saw its own server
alone ("done 3"). Reports samples/s, its wall time as a ratio to the same sweep over one shared
stateless server (the cost of isolation), the server processes started and still alive at the end
(counted by a marker in their command line), and CPU per sample (the exited servers' CPU included).

    python -m benchmarks.sweep [--samples 1000] [--concurrency 200] [--env-samples 200] [--env-concurrency 16]
                               [--smoke]   (or python benchmarks/sweep.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import parse_args
from benchmarks.support.processes import processes_with

CALL_S = 0.05
CRITICAL_PATH_CALLS = 3


async def reply(request: LLMRequest, agent: str) -> LLMResponse | str:
    """The deterministic model: 50 ms per call."""
    await asyncio.sleep(CALL_S)
    if agent != "lead":
        return f"{agent} done"
    if request.messages[-1].role == "tool":
        return "both done"
    return LLMResponse(tool_calls=[ToolCall(id="c1", name="assign_tasks", arguments=json.dumps(
        {"tasks": [{"assignee": "a", "goal": "part a"}, {"assignee": "b", "goal": "part b"}]}))])


USER_TURNS = 3


async def env_reply(request: LLMRequest, agent: str) -> LLMResponse | str:
    """The environment case's model (lead and simulated user), 50 ms per call: each turn the lead calls
    the one MCP tool it is offered (``kv__incr`` or ``echo__echo``) and answers with its result."""
    await asyncio.sleep(CALL_S)
    if agent == "user_sim":
        return "and once more, please"
    last = request.messages[-1]
    if last.role == "tool":
        return f"done {last.content}"
    names = [t.name for t in request.tools]
    tool = next((n for n in names if n.endswith(("__incr", "__echo"))), "kv__incr")
    arguments = {"key": "n"} if tool.endswith("incr") else {"text": "1"}
    return LLMResponse(tool_calls=[ToolCall(id=f"t{len(request.messages)}", name=tool, arguments=json.dumps(arguments))])


def write_env_suite(folder: Path, n: int, marker: str, sample_root: Path | None, name: str = "env") -> Path:
    """``n`` cases of a one-agent team talking with a simulated user for :data:`USER_TURNS` turns: over
    its own ``state_mcp_server`` per session (``sample_root`` given) or one shared stateless echo server."""
    from benchmarks.support.state_mcp_server import command

    if sample_root is not None:
        server = {**command("--marker", marker, "--state-dir", "${sample_dir}"), "scope": "session"}
        extra: dict[str, Any] = {"environment": {"sample_dir": str(sample_root)}}
        tools, expect = ["kv__*"], f"done {USER_TURNS}"
    else:
        server = {**command(), "args": ["-m", "benchmarks.support.echo_mcp", "--stdio", "--marker", marker]}
        extra, tools, expect = {}, ["echo__*"], "done"
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": name, "entry": "lead", "default_model": "m", "mcpServers": {"kv" if sample_root else "echo": server},
        "models": {"m": {"provider": "function", "function": "benchmarks.sweep:env_reply"}},
        "agents": [{"id": "lead", "tools": tools, "permissions": {"level": "L2"}}],
        "user": {"model": "m", "max_turns": USER_TURNS}, **extra,
    }))
    with open(folder / "cases.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"e{i}", "input": f"count {i}", "expect": {"contains": expect}}) + "\n")
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": name, "team": "team.yaml", "cases": "cases.jsonl",
                                                       "timeout_s": 300}))
    return folder / "suite.yaml"


def write_suite(folder: Path, n: int, name: str = "bench") -> Path:
    """A suite of ``n`` cases; the name tells suites apart (the same suite in one lake is resumed, not run)."""
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": "bench", "entry": "lead", "default_model": "m",
        "models": {"m": {"provider": "function", "function": "benchmarks.sweep:reply"}},
        "agents": [{"id": "lead", "tools": ["assign_tasks"]}, {"id": "a"}, {"id": "b"}],
    }))
    with open(folder / "cases.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"c{i}", "input": f"job {i}", "expect": {"contains": "done"}}) + "\n")
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": name, "team": "team.yaml", "cases": "cases.jsonl"}))
    return folder / "suite.yaml"


def _cpu_seconds(pids: list[int], children: bool = False) -> float:
    """CPU seconds of ``pids`` (with ``children``: plus their exited, reaped children's, such as MCP servers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15 if children else 13]) / tick
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def _cpu_by_process(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far per kind of process (driver, each Ray actor class, raylet, GCS)."""
    out: dict[str, float] = {}
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        kind = "driver" if pid == os.getpid() else next(
            (w.split(".")[0] for w in cmd.split() if w.startswith("ray::")), cmd.split()[0].rsplit("/", 1)[-1])
        out[kind] = out.get(kind, 0.0) + _cpu_seconds([pid])
    return out


def _ray_pids() -> list[int]:
    """This process and every process it started, directly or not: the Ray instance it runs
    (GCS, raylet, workers, agents), and nothing of any other Ray on the machine."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--pool-size", type=int, default=None, help="host actors (default: one per CPU)")
    parser.add_argument("--env-samples", type=int, default=200, help="samples of the environment case (0: skip it)")
    parser.add_argument("--env-concurrency", type=int, default=16)
    args = parse_args(parser, smoke={"samples": 20, "concurrency": 10, "env_samples": 4, "env_concurrency": 4})
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from troupe.evals.suite import load_suite
    from troupe.evals.sweep import Sweep
    from troupe.runtime.api import Troupe

    with tempfile.TemporaryDirectory() as tmp:
        suite = load_suite(write_suite(Path(tmp), args.samples))
        troupe = await Troupe.connect(lake=Path(tmp) / "lake", address="local", log_to_driver=False,
                                      pool_size=args.pool_size)
        try:
            warm_dir = Path(tmp) / "warm"
            warm_dir.mkdir()
            await Sweep(troupe, load_suite(write_suite(warm_dir, 20, "warm")), concurrency=20).run()  # start the pool
            pids = _ray_pids()
            cpu0, by0, t0 = _cpu_seconds(pids), _cpu_by_process(pids), time.monotonic()
            sweep = Sweep(troupe, suite, concurrency=args.concurrency)
            progress = await sweep.run()
            wall = time.monotonic() - t0
            if progress.passed + progress.failed != args.samples:
                raise RuntimeError(f"{args.samples} samples asked for, {progress.passed + progress.failed} ran: {progress}")
            from troupe.evals.results import results_table

            failing = [r for r in results_table(troupe.lake, sweep.run_id).to_pylist() if not r["passed"]]
            for r in failing[:3]:
                print(f"not passed: {r['case_id']} {r['status']} reply={r['reply']!r} error={r['error']} {r['grades']}")
            pids = _ray_pids()
            cpu = _cpu_seconds(pids) - cpu0
            by = {k: round((v - by0.get(k, 0.0)) / args.samples * 1e3, 2) for k, v in _cpu_by_process(pids).items()}
            env = await _environment_case(troupe, Path(tmp), args.env_samples, args.env_concurrency) \
                if args.env_samples else {}
        finally:
            await troupe.shutdown()
            if ray.is_initialized():
                ray.shutdown()
    ideal = math.ceil(args.samples / args.concurrency) * CRITICAL_PATH_CALLS * CALL_S
    figures: dict[str, Any] = {
        "samples": args.samples, "concurrency": args.concurrency, "ok": progress.passed, "failed": progress.failed,
        "wall_s": round(wall, 2), "samples_per_s": round(args.samples / wall, 1),
        "cpu_ms_per_sample": round(cpu / args.samples * 1e3, 2), "ideal_s": round(ideal, 2),
        "ratio_to_ideal": round(wall / ideal, 2),
        "final_grading_s": round(progress.finish_s[0], 3), "final_compaction_s": round(progress.finish_s[1], 3),
        "cpu_ms_per_sample_by_process": {k: v for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v >= 0.05},
        **env,
    }
    print(f"{args.samples} samples at concurrency {args.concurrency}: {wall:.1f}s = {figures['samples_per_s']} "
          f"samples/s (target >= 50); {figures['cpu_ms_per_sample']} ms CPU per sample; "
          f"{figures['ratio_to_ideal']}x the latency-bound ideal {ideal:.2f}s (target <= 3x); "
          f"{progress.passed} passed, {progress.failed} failed")
    if env:
        print(f"environment case, {env['env_samples']} samples at concurrency {env['env_concurrency']}, own stateful "
              f"MCP server each, simulated user {USER_TURNS} turns: {env['env_wall_s']}s = {env['env_samples_per_s']} "
              f"samples/s; {env['env_ratio_to_shared']}x the same sweep over one shared stateless server "
              f"({env['env_shared_wall_s']}s); {env['env_servers_started']} servers started, "
              f"{env['env_servers_alive']} alive at the end ({env['env_shared_servers_alive']} of the shared one); "
              f"{env['env_cpu_ms_per_sample']} ms CPU per sample ({env['env_runtime_cpu_ms_per_sample']} "
              f"without the servers' own); {env['env_ok']} passed, {env['env_failed']} failed")
    print(json.dumps(figures))


async def _env_sweep(troupe: Any, folder: Path, n: int, concurrency: int, marker: str,
                     sample_root: Path | None) -> tuple[float, float, float, int, int, int]:
    """Run one environment-case sweep: (wall s, CPU s with exited servers, CPU s of the runtime's processes
    alone, passed, not passed, servers alive after)."""
    from troupe.evals.results import results_table
    from troupe.evals.suite import load_suite
    from troupe.evals.sweep import Sweep

    folder.mkdir()
    suite = load_suite(write_env_suite(folder, n, marker, sample_root, name=folder.name))
    pids = _ray_pids()
    cpu0, own0, t0 = _cpu_seconds(pids, children=True), _cpu_seconds(pids), time.monotonic()
    sweep = Sweep(troupe, suite, concurrency=concurrency)
    progress = await sweep.run()
    wall = time.monotonic() - t0
    pids = _ray_pids()
    cpu, own = _cpu_seconds(pids, children=True) - cpu0, _cpu_seconds(pids) - own0
    for r in [r for r in results_table(troupe.lake, sweep.run_id).to_pylist() if not r["passed"]][:3]:
        print(f"not passed ({folder.name}): {r['case_id']} {r['status']} reply={r['reply']!r} error={r['error']}")
    return wall, cpu, own, progress.passed, progress.done - progress.passed, len(processes_with(marker))


async def _environment_case(troupe: Any, tmp: Path, n: int, concurrency: int) -> dict[str, Any]:
    """The environment case and its baseline (one shared stateless server), on the same runtime."""
    marker = f"sweepenv-{os.getpid()}-{time.monotonic_ns()}"
    await _env_sweep(troupe, tmp / "env-warm", min(n, 4), min(n, 4), f"{marker}-warm", tmp / "warm-samples")
    shared_wall, _, _, shared_ok, _, shared_alive = await _env_sweep(
        troupe, tmp / "env-shared", n, concurrency, f"{marker}-shared", None)
    samples = tmp / "env-samples"
    wall, cpu, own, ok, failed, alive_now = await _env_sweep(troupe, tmp / "env-own", n, concurrency, marker, samples)
    started = sum(1 for d in samples.iterdir() if (d / "state.json").exists()) if samples.exists() else 0
    if ok + failed != n or shared_ok != n:
        raise RuntimeError(f"environment case: {n} samples asked for, {ok} + {failed} ran ({shared_ok} passed shared)")
    return {
        "env_samples": n, "env_concurrency": concurrency, "env_user_turns": USER_TURNS, "env_ok": ok,
        "env_failed": failed, "env_wall_s": round(wall, 2), "env_samples_per_s": round(n / wall, 1),
        "env_shared_wall_s": round(shared_wall, 2), "env_ratio_to_shared": round(wall / shared_wall, 2),
        "env_servers_started": started, "env_servers_alive": alive_now, "env_shared_servers_alive": shared_alive,
        "env_cpu_ms_per_sample": round(cpu / n * 1e3, 2),
        "env_runtime_cpu_ms_per_sample": round(own / n * 1e3, 2),  # without the MCP server processes' own CPU
    }


if __name__ == "__main__":
    asyncio.run(main())
