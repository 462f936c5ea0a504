"""The shell tool, with real subprocesses: workspace as cwd, exit codes, caps, and process-group kills."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.support.processes import processes_with
from troupe.runtime.config import AgentSpec, PermissionLevel, WorkspaceConfig
from troupe.runtime.errors import ModelVisibleError, ToolArgumentError, ToolTimeoutError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.tools.builtins import BUILTIN_TOOLS
from troupe.tools.builtins.shell import shell
from troupe.tools.builtins.workspace import read_file, write_file
from troupe.tools.context import ToolContext
from troupe.tools.spec import Execution


def make_ctx(workspace: Path | None, **config: Any) -> ToolContext:
    return ToolContext(
        session_id=SessionId("s-sh"), run_id=RunId("r-sh"), agent=AgentId("lead"), services=None,  # type: ignore[arg-type]
        spec=AgentSpec(id="lead"), workspace=workspace, workspace_config=WorkspaceConfig(**config),
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return make_ctx(root, shell_timeout_s=5, shell_output_chars=400)


async def sh(ctx: ToolContext, command: str, **kw: Any) -> str:
    return await shell.invoke({"command": command, **kw}, ctx)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an unreaped zombie counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sleeper() -> str:
    """A ``sleep`` argument no other process has: the shell's pids are its sandbox's own (a pid namespace),
    so the tests find its processes on the host by their command line instead."""
    return f"30.{uuid.uuid4().int % 10**9:09d}"


async def no_process(marker: str, within: float = 2.0) -> bool:
    """Whether no live process has ``marker`` in its command line (within ``within`` seconds)."""
    deadline = time.monotonic() + within
    while any(p.status() != psutil.STATUS_ZOMBIE for p in processes_with(marker)):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- running in the workspace --------------------------------------------------------------------
async def test_runs_in_the_workspace(root, ctx):
    assert not root.exists()
    assert await sh(ctx, "pwd") == f"{os.path.realpath(root)}\n[exit code 0]"


async def test_files_are_shared_with_the_file_tools(root, ctx):
    assert await sh(ctx, "mkdir -p out && echo made by shell > out/x.txt") == "(no output)\n[exit code 0]"
    assert await read_file.invoke({"path": "out/x.txt"}, ctx) == "made by shell\n"
    await write_file.invoke({"path": "in.txt", "content": "from write_file"}, ctx)
    assert await sh(ctx, "cat in.txt") == "from write_file\n[exit code 0]"


async def test_nonzero_exit_is_a_result_with_stderr(ctx):
    assert await sh(ctx, "echo out; echo err >&2; exit 3") == "out\nerr\n[exit code 3]"
    assert await sh(ctx, "ls no-such-file") == (
        "ls: cannot access 'no-such-file': No such file or directory\n[exit code 2]")
    assert await sh(ctx, "kill -9 $$") == "(no output)\n[killed by SIGKILL (exit code 137)]"


async def test_no_stdin_and_bad_utf8(ctx):
    assert await sh(ctx, "cat") == "(no output)\n[exit code 0]"  # would hang if stdin were inherited
    assert await sh(ctx, r"printf 'caf\xe9\n'") == "caf\ufffd\n[exit code 0]"


async def test_output_is_capped_keeping_head_and_tail(ctx):
    out = await sh(ctx, "seq 1 5000")
    head, rest = out.split("\n[... output truncated: ", 1)
    note, tail = rest.split(" ...]\n", 1)
    assert head.startswith("1\n2\n3\n")
    assert tail.endswith("4999\n5000\n[exit code 0]")
    total = sum(len(f"{i}\n") for i in range(1, 5001))
    omitted = total - 400
    assert note.startswith(f"{omitted} of {total} characters omitted; redirect the output to a file")
    assert len(head) + len(tail.removesuffix("\n[exit code 0]")) + 1 == 400


# --- timeouts and process groups -----------------------------------------------------------------
async def test_timeout_kills_the_whole_process_group(ctx):
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError) as info:
        await sh(ctx, f"sleep {(mark := sleeper())} & echo child $!; sleep 30", timeout_s=0.5)
    assert time.monotonic() - started < 3
    msg = str(info.value)
    group = int(re.search(r"\(process group (\d+)\)", msg).group(1))
    assert re.search(r"child (\d+)", msg)
    assert msg.startswith("command timed out after 0.5s and was killed, with every process it started")
    assert msg.endswith("Run it in smaller steps, or pass a larger timeout_s (at most 5s).")
    assert info.value.fields == {"tool": "shell", "timeout_s": 0.5}
    assert await no_process(mark)
    assert await gone(group)


async def test_default_timeout_comes_from_config(root):
    ctx = make_ctx(root, shell_timeout_s=0.3)
    with pytest.raises(ToolTimeoutError, match=r"timed out after 0.3s .* \(it printed nothing\)"):
        await sh(ctx, "sleep 10")


async def test_timeout_is_capped_at_the_maximum(ctx):
    assert await sh(ctx, "echo hi", timeout_s=999) == (
        "hi\n[exit code 0]\n[timeout_s 999 is above the maximum; used 5s]")
    with pytest.raises(ToolArgumentError, match="timeout_s must be more than 0 seconds"):
        await sh(ctx, "echo hi", timeout_s=0)


async def test_background_processes_are_stopped_when_the_command_ends(ctx):
    started = time.monotonic()
    out = await sh(ctx, f"sleep {(mark := sleeper())} & echo child $!")
    assert time.monotonic() - started < 3
    assert re.search(r"child (\d+)", out)
    assert out.endswith("[exit code 0]\n[background processes the command left running were stopped; the shell "
                        "tool does not keep processes alive after a command ends]")
    assert await no_process(mark)
    # a detached one that does not hold the output open is stopped as well
    out = await sh(ctx, f"sleep {(mark := sleeper())} >/dev/null 2>&1 & echo child $!")
    assert "[background processes the command left running were stopped" in out
    assert await no_process(mark)


async def test_cancelling_the_call_kills_the_group(root, ctx):
    pidfile = Path(os.path.realpath(root)) / "pid"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sh(ctx, f"sleep {(mark := sleeper())} & echo $! > pid; sleep 30"), 0.5)
    assert pidfile.read_text().strip().isdigit()
    assert await no_process(mark)


# --- arguments, no workspace, spec ---------------------------------------------------------------
async def test_empty_command_and_no_workspace(ctx):
    with pytest.raises(ToolArgumentError, match="command is empty"):
        await sh(ctx, "  ")
    with pytest.raises(ModelVisibleError, match="tool 'shell' needs a workspace folder"):
        await sh(make_ctx(None), "ls")


def test_shell_spec():
    [spec] = [t.spec for t in BUILTIN_TOOLS if t.name == "shell"]
    assert spec.level is PermissionLevel.L3
    assert spec.scopes == ("shell:exec",)
    assert spec.idempotent is False
    assert spec.execution is Execution.INLINE
    assert spec.source == "builtin"
    assert spec.timeout_s >= WorkspaceConfig().shell_timeout_s  # the tool's own timeout fires first
    assert shell.spec.parameters["required"] == ["command"]
    assert set(shell.spec.parameters["properties"]) == {"command", "timeout_s"}


async def test_shell_does_not_see_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    monkeypatch.setenv("TROUPE_VISIBLE", "yes")
    from troupe.tools.builtins.shell import shell_env

    env = shell_env()
    assert "OPENAI_API_KEY" not in env and env["TROUPE_VISIBLE"] == "yes"
