"""Tools for scheduler and guardrail tests, importable by path (``tests.support.tool_fixtures:NAME``)
so Ray workers can load them. Each leaves evidence in files, so a test can check what ran."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from troupe.tools.spec import tool


def _mark(folder: str, name: str, text: str = "") -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / name).write_text(text)


@tool(timeout_s=30)
async def io_wait(seconds: float, folder: str, tag: str) -> str:
    """Wait, leaving <tag>.start, then <tag>.done or <tag>.cancelled in folder."""
    _mark(folder, f"{tag}.start", str(os.getpid()))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _mark(folder, f"{tag}.cancelled")
        raise
    _mark(folder, f"{tag}.done")
    return f"{tag} waited {seconds}s in pid {os.getpid()}"


@tool(max_concurrency=2, timeout_s=30)
async def capped(seconds: float, log: str) -> str:
    """At most two at once, cluster-wide; appends start and end times to log."""
    start = time.time()
    await asyncio.sleep(seconds)
    with open(log, "a") as f:
        f.write(json.dumps({"start": start, "end": time.time(), "pid": os.getpid()}) + "\n")
    return "ok"


@tool(resources={"num_cpus": 0.5, "troupe_test": 1}, timeout_s=60)
def where_am_i() -> dict[str, object]:
    """Report the process and the Ray resources this call was given."""
    import ray

    ctx = ray.get_runtime_context()
    return {"pid": os.getpid(), "resources": ctx.get_assigned_resources(), "task": ctx.get_task_name()}


@tool(resources={"num_gpus": 1}, timeout_s=5)
def needs_gpu() -> str:
    """Needs a GPU (none in the test cluster)."""
    return "ran"


@tool(idempotent=True, retries=3, timeout_s=5)
def flaky(counter: str, fail_times: int) -> str:
    """Fails its first fail_times calls (counted in the counter file), then succeeds."""
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < fail_times:
        raise ConnectionError(f"transient failure {n + 1}")
    return f"ok after {n + 1} attempts"


@tool(level="L3", scopes=["file:write"], timeout_s=5)
def write_marker(path: str) -> str:
    """A side effect that needs level L3 and file:write."""
    Path(path).write_text("written")
    return "written"


@tool(needs_approval=True, timeout_s=5, execution="inline")
def approved_write(path: str) -> str:
    """A side effect that needs the user's approval."""
    Path(path).write_text("approved")
    return "done"


def crunch(n: int) -> int:
    """CPU-bound: sum of squares below n (a plain function, made a tool by its import path)."""
    return sum(i * i for i in range(n))


@tool(timeout_s=0.5)
async def hang(folder: str, tag: str) -> str:
    """Never finishes in time; leaves <tag>.cancelled when stopped."""
    return await io_wait.fn(30, folder, tag)
