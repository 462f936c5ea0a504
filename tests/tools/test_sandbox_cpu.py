"""Cpu tools that opt in (``@tool(sandbox=True)``) run in a child Python inside the sandbox, through the
in-process dispatcher (the Ray path ships the same :class:`SandboxedCall` to a Ray task)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.tools.test_sandbox import bwrap_here, make_ctx  # noqa: F401  (the fixture: skip locally, fail under CI)
from troupe.runtime.agent.dispatch import LocalDispatcher
from troupe.runtime.agent.scheduler import ToolJob
from troupe.runtime.errors import ToolExecutionError, ToolTimeoutError
from troupe.tools.context import ToolContext
from troupe.tools.sandbox import SandboxedCall, sandboxed_target
from troupe.tools.spec import Execution, Tool, tool


def _peek(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror}"


@tool(sandbox=True, timeout_s=20)
def peek(path: str) -> str:
    """Read a file."""
    return _peek(path)


@tool(name="peek_unsandboxed", execution="cpu", timeout_s=20)
def peek_unsandboxed(path: str) -> str:
    """Read a file (no sandbox)."""
    return _peek(path)


@tool(sandbox=True, timeout_s=2)
def heartbeat(name: str) -> None:
    """Append to a file in the workspace until killed (a child process too)."""
    import subprocess

    subprocess.Popen(["sh", "-c", f"while :; do echo c >> {name}.child; sleep 0.05; done"], start_new_session=True)
    while True:
        with open(name, "a") as f:
            f.write("x\n")
        time.sleep(0.05)


@tool(sandbox=True, timeout_s=20)
async def where(note: str) -> dict[str, Any]:
    """Where the function runs: its working folder and pid; writes a file there."""
    Path("note.txt").write_text(note)
    print("a print does not corrupt the answer")
    return {"cwd": os.getcwd(), "pid": os.getpid(), "home": os.environ.get("HOME")}


@tool(sandbox=True, timeout_s=20)
def fails() -> None:
    """Raises."""
    raise ToolExecutionError("no such record", tool="fails")


async def call(t: Tool, ctx: ToolContext, **kwargs: Any) -> Any:
    job = ToolJob.for_call(t.spec, t.validate(kwargs), key=f"k-{time.monotonic_ns()}", session_id="s-sbx")
    dispatcher = LocalDispatcher()
    try:
        return await dispatcher.run(t, job, ctx)
    finally:
        await dispatcher.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_text("host data")
    return path


def test_sandbox_option_makes_a_cpu_tool() -> None:
    assert peek.spec.sandbox is True and peek.spec.execution is Execution.CPU
    assert peek_unsandboxed.spec.sandbox is False
    with pytest.raises(TypeError, match="sandbox=True is for execution='cpu' tools"):
        tool(sandbox=True, execution="io")(_peek)

    def with_ctx(ctx: ToolContext) -> None: ...

    with pytest.raises(TypeError, match="sandbox=True is for execution='cpu' tools"):
        tool(sandbox=True)(with_ctx)


async def test_sandboxed_cpu_tool_cannot_read_outside_its_workspace(tmp_path: Path, outside: Path) -> None:
    ctx = make_ctx(tmp_path / "ws")
    assert await call(peek, ctx, path=str(outside)) == "FileNotFoundError: No such file or directory"
    assert await call(peek_unsandboxed, ctx, path=str(outside)) == "host data"
    # the same tool with the team's sandbox off runs unsandboxed
    assert await call(peek, make_ctx(tmp_path / "ws", enabled=False), path=str(outside)) == "host data"


async def test_sandboxed_cpu_tool_works_in_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    found = await call(where, make_ctx(ws), note="hi")
    real = os.path.realpath(ws)
    assert found["cwd"] == real and found["home"] == real
    assert found["pid"] != os.getpid()
    assert (ws / "note.txt").read_text() == "hi"


async def test_sandboxed_cpu_tool_errors_come_back_as_raised(tmp_path: Path) -> None:
    with pytest.raises(ToolExecutionError, match="no such record"):
        await call(fails, make_ctx(tmp_path / "ws"))


async def test_sandboxed_cpu_tool_is_killed_on_timeout(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError):
        await call(heartbeat, make_ctx(ws), name="beat")
    assert time.monotonic() - started < 6
    sizes = [(ws / n).stat().st_size for n in ("beat", "beat.child")]  # it ran (a slow start would fail here)
    await asyncio.sleep(0.5)
    assert [(ws / n).stat().st_size for n in ("beat", "beat.child")] == sizes  # nothing left writing


async def test_sandboxed_target_travels_pickled(tmp_path: Path) -> None:
    import cloudpickle

    target = sandboxed_target(peek, make_ctx(tmp_path / "ws"), 5.0)
    assert isinstance(target, SandboxedCall)
    again = cloudpickle.loads(cloudpickle.dumps(target))  # what a Ray task receives
    assert again.request.timeout_s == 6.0
    assert await again(path="/etc/hostname-not-there") == "FileNotFoundError: No such file or directory"
    assert sandboxed_target(peek_unsandboxed, make_ctx(tmp_path / "ws"), 5.0) is peek_unsandboxed.fn
