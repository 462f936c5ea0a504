"""Cancellation latency: from ``session.cancel()`` to the in-flight work having stopped where it ran.

For each placement (``dedicated``, ``packed``) and each kind of work in flight, one agent is
mid-way through it when the client cancels the session:
  llm   a streamed answer trickling out of an OpenAI-compatible server (a ``llm:<agent>`` task on
        the node's LLM worker); stopped = the server sees the connection closed;
  task  a tool running as a Ray task (``tool:slow_task``); stopped = the task caught the
        KeyboardInterrupt ``ray.cancel`` raises in it and wrote its marker;
  io    a coroutine on the node's I/O tool worker; stopped = it caught the CancelledError and wrote
        its marker.
Each figure is measured outside the runtime (the server's clock, the time the tool wrote into its
marker), from just before the ``cancel`` call; the steps on the way (the supervisor's
``session.finished``, the agent's ``agent.state`` terminated) from their events' timestamps.
Baselines, in the same run, with the same evidence: ``ray.cancel`` from this driver of a sleeping
Ray task (for ``task``) and of a sleeping call on an async actor (for ``llm`` and ``io``, which both
run on async worker actors). Ratios are medians over medians. (A Ray task blocked in a C call,
where no KeyboardInterrupt reaches it, is killed ``FORCE_AFTER_S`` after the cancel, by design.)

    python -m benchmarks.cancel [--reps 7] [--smoke]   (or python benchmarks/cancel.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support import cancel_tools
from benchmarks.support.cancel_tools import cancelled_at, mark, mark_cancelled, sleep_marked
from benchmarks.support.cli import parse_args
from benchmarks.support.openai_server import OpenAICompatServer, TextReply

KINDS = ("llm", "task", "io")
PLACEMENTS = ("dedicated", "packed")
WORK_S = 60.0
"""How long each piece of work would run if nobody stopped it."""
WATCH_S = 0.002
"""How often the test server looks for a closed connection (the resolution of the llm figure)."""
FIX = cancel_tools.__name__


def team(kind: str, base_url: str, folder: Path, tag: str) -> Any:
    from troupe.runtime.config import parse_team

    if kind == "llm":
        model: dict[str, Any] = {"provider": "openai", "model": "m", "base_url": base_url, "max_retries": 0,
                                 "timeout_s": 120}
        tools: list[str] = []
    else:
        tool = {"task": "slow_task", "io": "slow_io"}[kind]
        work = {"name": tool, "arguments": {"seconds": WORK_S, "folder": str(folder), "tag": tag}}
        model = {"provider": "scripted", "scripts": {"a": [{"tool_calls": [work]}, {"text": "done"}]}}
        tools = [f"{FIX}:{tool}"]
    return parse_team({"name": f"cancel-{kind}", "entry": "a", "default_model": "m", "models": {"m": model},
                       "agents": [{"id": "a", "tools": tools}]})


async def _until(check: Any, what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s:g}s: {what}")
        await asyncio.sleep(0.002)


STEPS = ("finished", "terminated", "stopped")
"""What one cancellation is timed to: the supervisor's ``session.finished``, the agent's
``agent.state`` terminated (both from their events' timestamps, in the lake), the work stopped."""


def _event_times(lake: str, session_id: str) -> tuple[float, float]:
    from troupe.runtime.eventlog.lake import query

    sql = (f"select type, epoch_us(ts) / 1e6 as t from events where session_id = '{session_id}' and "
           "(type = 'session.finished' or (type = 'agent.state' and status = 'terminated'))")
    times = {row["type"]: row["t"] for row in query(lake, sql).to_pylist()}
    return times["session.finished"], times["agent.state"]


async def one_cancel(troupe: Any, server: OpenAICompatServer, folder: Path, kind: str, placement: str,
                     rep: int) -> dict[str, float]:
    """Seconds from ``session.cancel()`` to each of :data:`STEPS`, for one session."""
    tag = f"{placement}-{kind}-{rep}"
    if kind == "llm":
        server.enqueue(TextReply("x" * 1000, chunk_size=1, chunk_delay_s=WORK_S / 1000))
    session = await troupe.open(team(kind, server.base_url, folder, tag), placement=placement, subscribe=False)
    try:
        seen = len(server.chat_requests)
        await session.send("go")
        if kind == "llm":
            await _until(lambda: len(server.chat_requests) > seen, f"{tag}: the model call started")
            request = server.chat_requests[-1]
            await asyncio.sleep(0.3)  # a few chunks streamed
        else:
            await _until((folder / f"{tag}.start").exists, f"{tag}: the tool started")
            await asyncio.sleep(0.1)
        since_wall, since = time.time(), time.monotonic()
        await session.cancel("benchmark")
        if kind == "llm":
            await _until(lambda: request.client_closed_at is not None, f"{tag}: the stream was closed", 10)
            assert request.client_closed_at is not None
            stopped = request.client_closed_at - since
        else:
            await _until((folder / f"{tag}.cancelled").exists, f"{tag}: the tool was cancelled", 10)
            stopped = cancelled_at(folder, tag) - since_wall
    finally:
        await session.close()
    finished, terminated = _event_times(troupe.lake, session.id)
    return {"finished": finished - since_wall, "terminated": terminated - since_wall, "stopped": stopped}


def _sleep_in_task(seconds: float, folder: str, tag: str) -> None:
    """The baseline Ray task: sleeps in short slices; ``ray.cancel`` interrupts it."""
    sleep_marked(seconds, folder, tag)


class _Sleeper:
    """The baseline async actor: one call sleeps; ``ray.cancel`` cancels its asyncio task."""

    async def sleep(self, seconds: float, folder: str, tag: str) -> None:
        mark(folder, f"{tag}.start")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            mark_cancelled(folder, tag)
            raise


async def baseline(ref_of: Any, folder: Path, tag: str) -> float:
    import ray

    ref = ref_of(tag)
    await _until((folder / f"{tag}.start").exists, f"{tag}: started")
    await asyncio.sleep(0.1)
    since_wall = time.time()
    ray.cancel(ref)
    await _until((folder / f"{tag}.cancelled").exists, f"{tag}: cancelled", 10)
    return cancelled_at(folder, tag) - since_wall


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1e3, 1), "max_ms": round(max(samples) * 1e3, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warm", type=int, default=1, help="untimed rounds first (start the pool and workers)")
    args = parse_args(parser, smoke={"reps": 1, "warm": 0})
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TROUPE_BLOCK_REMOTE_MODELS", "1")
    import ray

    from troupe.runtime.api import Troupe

    with tempfile.TemporaryDirectory() as tmp, OpenAICompatServer(watch_s=WATCH_S) as server:
        folder = Path(tmp)
        troupe = await Troupe.connect(lake=folder / "lake", address="local", log_to_driver=False)
        try:
            task = ray.remote(_sleep_in_task).options(num_cpus=0.5, max_retries=0)
            actor = ray.remote(_Sleeper).options(num_cpus=0, max_concurrency=100).remote()
            base = {"ray task": [], "async actor call": []}
            figures: dict[str, dict[str, list[float]]] = {f"{p} {k}": {step: [] for step in STEPS}
                                                          for p in PLACEMENTS for k in KINDS}
            for warm in range(args.warm):  # warm-up: start the pool, the node workers, Ray's task workers
                for placement in PLACEMENTS:
                    for kind in KINDS:
                        await one_cancel(troupe, server, folder, kind, placement, -1 - warm)
            for rep in range(args.reps):
                base["ray task"].append(await baseline(
                    lambda tag: task.remote(WORK_S, str(folder), tag), folder, f"base-task-{rep}"))
                base["async actor call"].append(await baseline(
                    lambda tag: actor.sleep.remote(WORK_S, str(folder), tag), folder, f"base-actor-{rep}"))
                for placement in PLACEMENTS:
                    for kind in KINDS:
                        sample = await one_cancel(troupe, server, folder, kind, placement, rep)
                        for step, seconds in sample.items():
                            figures[f"{placement} {kind}"][step].append(seconds)
            ray.kill(actor)
        finally:
            await troupe.shutdown()
            if ray.is_initialized():
                ray.shutdown()
    base_of = {"task": "ray task", "llm": "async actor call", "io": "async actor call"}
    out: dict[str, Any] = {"reps": args.reps, "baselines": {k: summary(v) for k, v in base.items()}, "cancel": {}}
    print("baselines (ray.cancel, same evidence): " + ", ".join(
        f"{k} {summary(v)['median_ms']} ms median / {summary(v)['max_ms']} ms max" for k, v in base.items()))
    for name, steps in figures.items():
        kind = name.split()[1]
        row: dict[str, Any] = summary(steps["stopped"])
        baseline_s = statistics.median(base[base_of[kind]])
        row["ratio_to_baseline"] = round(statistics.median(steps["stopped"]) / baseline_s, 2)
        row["median_ms_to"] = {step: round(statistics.median(steps[step]) * 1e3, 1) for step in STEPS[:-1]}
        out["cancel"][name] = row
        print(f"{name:>16}: stopped {row['median_ms']:6.1f} ms median, {row['max_ms']:6.1f} ms max = "
              f"{row['ratio_to_baseline']:5.2f}x {base_of[kind]}; medians to session.finished "
              f"{row['median_ms_to']['finished']} ms, to agent terminated {row['median_ms_to']['terminated']} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
