"""Runs Troupe on a Ray of its own with the dashboard and a metrics export port, and reports what
Ray's state API and the Prometheus endpoint show while a session runs (tests/actors/test_dashboard_metrics.py).

    python -m tests.support.dashboard_run OUT.json

A separate process because the session-wide test Ray has no dashboard (and must never be touched
from here): ``address="local"`` starts a private instance, shut down with ``ray.shutdown()``.

The session: an ``openai``-provider agent (``lead``) against the test OpenAI-compatible server. Its
first answer calls two tools: ``wait_for_file`` (an I/O tool that blocks until this script lets it
go) and ``write_marker``, which needs level L3 and is refused (a guardrail denial). While the tool
blocks, a second message waits in the lead's mailbox and the first metrics are read; then the tool
is released, the lead answers, and the final figures are read. A 4-sample sweep follows (sweep
progress gauges, and a pool host).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from troupe.tools.spec import tool

TEAM = "dashteam"
PHASE_TIMEOUT_S = 90.0


@tool(timeout_s=120)
async def wait_for_file(path: str, started: str) -> str:
    """Waits until ``path`` exists (leaving ``started`` when it begins)."""
    Path(started).write_text("started")
    while not os.path.exists(path):
        await asyncio.sleep(0.05)
    return "released"


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return [s for s in parse_prometheus(r.read().decode()) if s[0].startswith("ray_troupe_")]
    except OSError:
        return []


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **tags: str) -> float | None:
    """Sum over the series of ``name`` whose tags include ``tags`` (one series per process)."""
    hits = [v for n, t, v in samples if n == name and all(t.get(k) == w for k, w in tags.items())]
    return sum(hits) if hits else None


async def until(port: int, expected: dict[str, tuple[str, dict[str, str], float]]) -> dict[str, Any]:
    """Scrape until every expected value is there (or the phase times out); what was seen, by label."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    started = time.monotonic()
    while True:
        samples = scrape(port)
        seen = {label: value(samples, name, **tags) for label, (name, tags, _) in expected.items()}
        ok = all(seen[label] == want for label, (_, _, want) in expected.items())
        if ok or time.monotonic() > deadline:
            return {"seen": seen, "expected": {k: v[2] for k, v in expected.items()},
                    "waited_s": round(time.monotonic() - started, 1),
                    "series": sorted({n for n, _, _ in samples})}
        await asyncio.sleep(0.5)


async def task_names(dashboard: str, wanted: set[str], within_s: float = 30.0) -> dict[str, list[str]]:
    """States of the Ray tasks named in ``wanted`` (task events reach the state API after a moment)."""
    from ray.util.state import list_tasks

    deadline = time.monotonic() + within_s
    while True:
        found: dict[str, list[str]] = {}
        for name in wanted:
            tasks = await asyncio.to_thread(list_tasks, address=dashboard, filters=[("name", "=", name)],
                                           limit=100, raise_on_missing_output=False)
            if tasks:
                found[name] = sorted({str(t.state) for t in tasks})
        if set(found) == wanted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def actor_names(dashboard: str) -> list[dict[str, str]]:
    from ray.util.state import list_actors

    # The address is explicit: other Ray instances may run on this machine.
    actors = await asyncio.to_thread(list_actors, address=dashboard, filters=[("state", "=", "ALIVE")], limit=1000,
                                     raise_on_missing_output=False)
    return [{"name": a.name or "", "class_name": a.class_name or ""} for a in actors]


async def main(out: Path) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["TROUPE_BLOCK_REMOTE_MODELS"] = "1"
    from benchmarks.support.openai_server import OpenAICompatServer, TextReply, ToolCallSpec, ToolCallsReply, free_port
    from benchmarks.sweep import write_suite
    from troupe.actors.ray_metrics import sweep_progress_reporter
    from troupe.evals.suite import load_suite
    from troupe.evals.sweep import Sweep
    from troupe.runtime.api import Troupe
    from troupe.runtime.config import parse_team

    report: dict[str, Any] = {}
    metrics_port, dashboard_port = free_port(), free_port()
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    with OpenAICompatServer(default=TextReply("one more")) as srv, tempfile.TemporaryDirectory() as tmp:
        gate, started = Path(tmp) / "gate", Path(tmp) / "started"
        srv.enqueue(ToolCallsReply([ToolCallSpec("wait_for_file", {"path": str(gate), "started": str(started)}),
                                    ToolCallSpec("write_marker", {"path": str(Path(tmp) / "marker")})]))
        srv.enqueue(TextReply("all finished", chunk_size=3))
        team = parse_team({
            "name": TEAM, "entry": "lead", "default_model": "m",
            "models": {"m": {"provider": "openai", "model": "test-model", "base_url": srv.base_url, "max_retries": 0}},
            "agents": [{"id": "lead", "permissions": {"level": "L2"},
                        "tools": ["tests.support.dashboard_run:wait_for_file",
                                  "tests.support.tool_fixtures:write_marker"]}],
        })
        troupe = await Troupe.connect(address="local", lake=Path(tmp) / "lake", pool_size=1, num_cpus=2,
                                      include_dashboard=True, dashboard_port=dashboard_port,
                                      _metrics_export_port=metrics_port)
        try:
            session = await troupe.open(team, placement="dedicated", subscribe=False)
            report["session"] = str(session.id)
            report["scheduler"] = troupe.backend.scheduler_name
            report["event_log"] = troupe.backend.log_name
            await session.send("go")
            deadline = time.monotonic() + 60
            while not started.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the tool never started")
                await asyncio.sleep(0.05)
            await session.send("and then this")  # waits in the lead's mailbox: it is mid-turn
            team_ = {"team": TEAM}
            lead = {**team_, "agent": "lead", "model": "test-model"}
            report["running"] = await until(metrics_port, {
                "llm_calls": ("ray_troupe_llm_calls_total", {**lead, "status": "ok"}, 1),
                "tokens_in": ("ray_troupe_llm_tokens_total", {**lead, "direction": "in"}, 11),
                "tokens_out": ("ray_troupe_llm_tokens_total", {**lead, "direction": "out"}, 7),
                "llm_latency_count": ("ray_troupe_llm_latency_seconds_count", lead, 1),
                "denied_calls": ("ray_troupe_tool_calls_total", {**team_, "tool": "write_marker", "status": "error"}, 1),
                "denials": ("ray_troupe_guardrail_denials_total", {**team_, "agent": "lead", "tool": "write_marker"}, 1),
                "active": ("ray_troupe_sessions_active", team_, 1),
                "mailbox": ("ray_troupe_mailbox_depth", {**team_, "agent": "lead"}, 1),
                "events_llm_request": ("ray_troupe_events_total", {"type": "llm.request"}, 1),
            })
            report["tasks_running"] = await task_names(dashboard, {"llm:lead", "tool:wait_for_file"})
            report["actors"] = await actor_names(dashboard)
            gate.write_text("go")
            result = await session.result(timeout=60)
            report["status"] = str(result.status)
            report["finished"] = await until(metrics_port, {
                "tool_ok": ("ray_troupe_tool_calls_total", {**team_, "tool": "wait_for_file", "status": "ok"}, 1),
                "tool_latency_count": ("ray_troupe_tool_latency_seconds_count", {**team_, "tool": "wait_for_file"}, 1),
                "sessions_completed": ("ray_troupe_sessions_finished_total", {**team_, "status": "completed"}, 1),
                "active": ("ray_troupe_sessions_active", team_, 0),
            })
            await session.close()
            suite = load_suite(write_suite(Path(tmp), 4))
            # the dashboard's troupe_sweep_samples gauges, as `troupe eval run` wires them
            progress = await Sweep(troupe, suite, concurrency=4, on_progress=sweep_progress_reporter()).run()
            report["sweep_passed"] = progress.passed
            report["sweep"] = await until(metrics_port, {
                "total": ("ray_troupe_sweep_samples", {"suite": "bench", "state": "total"}, 4),
                "done": ("ray_troupe_sweep_samples", {"suite": "bench", "state": "done"}, 4),
                "running": ("ray_troupe_sweep_samples", {"suite": "bench", "state": "running"}, 0),
                "failed": ("ray_troupe_sweep_samples", {"suite": "bench", "state": "failed"}, 0),
                "bench_llm_calls": ("ray_troupe_llm_calls_total", {"team": "bench", "status": "ok"}, 16),
            })
            report["actors_after_sweep"] = await actor_names(dashboard)
        finally:
            await troupe.shutdown()
    out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
