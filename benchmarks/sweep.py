"""An eval sweep at scale: N samples of a 3-agent team whose deterministic model waits 50 ms per call.

The team: ``lead`` hands one task each to ``a`` and ``b`` (``assign_tasks``), they answer, and the
lead answers the user: 4 LLM calls per sample, 3 of them on the critical path (lead, a worker,
lead), so a sample takes at least 150 ms. The latency-bound ideal for N samples at concurrency C is
ceil(N / C) x 150 ms. Reports samples per second, the runtime's CPU time per sample (this process
plus every Ray worker of the run, from /proc), and the wall time as a ratio to that ideal.

    python -m benchmarks.sweep [--samples 1000] [--concurrency 200] [--smoke]   (or python benchmarks/sweep.py)
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


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
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
    args = parse_args(parser, smoke={"samples": 20, "concurrency": 10})
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
    }
    print(f"{args.samples} samples at concurrency {args.concurrency}: {wall:.1f}s = {figures['samples_per_s']} "
          f"samples/s (target >= 50); {figures['cpu_ms_per_sample']} ms CPU per sample; "
          f"{figures['ratio_to_ideal']}x the latency-bound ideal {ideal:.2f}s (target <= 3x); "
          f"{progress.passed} passed, {progress.failed} failed")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
