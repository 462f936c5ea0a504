"""A shell tool: one ``bash -c`` command in the session's workspace folder.

The command runs in a process group of its own, with no stdin, its stdout and stderr merged. On a
timeout (or when the caller cancels the call) the whole group is killed, background children
included; processes it leaves running when it exits are stopped too, so nothing outlives the call.
A non-zero exit status is an ordinary result the model reads, not an error.

Unless the team file says ``sandbox: off``, the command runs inside a sandbox
(:mod:`troupe.tools.sandbox`): only the workspace writable, the project and the rest of the host
absent, no network without ``network:external``, process and memory limits. When no sandbox can
be made on this machine the tool refuses to run, saying why and how to fix it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from troupe.runtime.errors import ToolArgumentError, ToolTimeoutError
from troupe.tools.context import ToolContext
from troupe.tools.sandbox import Confinement, SandboxRequest, reaper, scrubbed_env
from troupe.tools.spec import tool
from troupe.tools.workspace import Workspace

EXIT_GRACE_S = 0.3
"""After the command exits, how long its output may still arrive (from children holding the pipe)."""
DRAIN_AFTER_KILL_S = 1.0


class _Output:
    """Collects decoded output, keeping its head and tail within ``cap`` characters."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head = ""
        self.tail = ""
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _add(self, text: str) -> None:
        self.total += len(text)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += text[:room]
            text = text[room:]
        if text:
            self.tail = (self.tail + text)[-self.cap:]

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65_536):
            self._add(self._decoder.decode(chunk))
        self._add(self._decoder.decode(b"", final=True))

    def text(self) -> str:
        if self.total <= self.cap:
            return self.head + self.tail
        keep = self.cap - self.cap // 2
        omitted = self.total - len(self.head) - keep
        return (f"{self.head}\n[... output truncated: {omitted} of {self.total} characters omitted; redirect the "
                f"output to a file and read it with read_file or grep to see it all ...]\n{self.tail[-keep:]}")


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")  # the group exists; its members may all be zombies nobody has reaped yet
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
                return True
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _settle(task: asyncio.Task[None], timeout: float) -> bool:
    """Wait up to ``timeout`` for the output reader to reach end of file; whether it did."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    return bool(done)


async def _wait_exit(proc: subprocess.Popen[bytes]) -> int:
    """The exit status, as soon as the process exits (even while its children still hold the pipe open)."""
    delay = 0.005
    while (code := proc.poll()) is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return code


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        return f"[killed by {sig} (exit code {128 - code})]"
    return f"[exit code {code}]"


def shell_env(hidden: Iterable[str] = ()) -> dict[str, str]:
    """The agent process's environment without its secrets: a model-written command must not be
    able to print an API key into the conversation (and from there into the lake). ``hidden`` names
    more variables to leave out (where the team's secrets are read from)."""
    return scrubbed_env(hidden)


@functools.cache
def _reaper_source() -> str:
    return Path(reaper.__file__).read_text()


def _read_report(fd: int | None) -> dict[str, Any]:
    """What the sandbox's first process said about how the command ended (empty when unsandboxed or silent)."""
    if fd is None:
        return {}
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        return {}
    with contextlib.suppress(ValueError):
        found = json.loads(data)
        if isinstance(found, dict):
            return found
    return {}


def _close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


@tool(level="L3", scopes=("shell:exec",), timeout_s=3600, source="builtin")
async def shell(ctx: ToolContext, command: str, timeout_s: float | None = None) -> str:
    """Run a bash command in the workspace folder; returns its output (stdout and stderr) and exit code.

    Args:
        command: A bash command line, e.g. "ls -la && python3 script.py". It has no stdin.
        timeout_s: Seconds before the command and everything it started are killed (default and maximum: the
            workspace's shell timeout).
    """
    name = "shell"
    cfg = ctx.workspace_config
    limit = cfg.shell_timeout_s
    notes: list[str] = []
    if timeout_s is None:
        timeout_s = limit
    elif timeout_s <= 0:
        raise ToolArgumentError(f"timeout_s must be more than 0 seconds (at most {limit:g}), got {timeout_s:g}",
                                tool=name)
    elif timeout_s > limit:
        notes.append(f"[timeout_s {timeout_s:g} is above the maximum; used {limit:g}s]")
        timeout_s = limit
    if not command.strip():
        raise ToolArgumentError("command is empty; give a bash command line such as 'ls -la'", tool=name)
    ws = Workspace.of(ctx, name)
    env = shell_env(hidden=[ref.env for ref in ctx.secrets.values() if ref.env])
    argv = ["bash", "-c", command]
    box: Confinement | None = None
    report_r: int | None = None
    report_w: int | None = None
    if ctx.sandbox.enabled:  # refuses (model-visible, with the reason) when no sandbox can be made here
        box = Confinement(SandboxRequest.for_context(ctx, str(ws.root)), tool=name)
        report_r, report_w = os.pipe()
        argv = box.argv([os.path.realpath(sys.executable), "-I", "-S", "-c", _reaper_source(), str(report_w), *argv])
        env = box.env(env)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ws.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: pgid == pid
            env=env,
            pass_fds=() if report_w is None else (report_w,),
        )
    except BaseException:
        _close_fds(report_r, report_w)
        if box is not None:
            box.close()
        raise
    _close_fds(report_w)
    pgid = proc.pid
    if box is not None:
        box.started(pgid)

    def kill() -> None:
        _kill_group(pgid)
        if box is not None:  # the sandbox's processes live in sessions of their own: its cgroup has them all
            box.kill()

    output = _Output(cfg.shell_output_chars)
    assert proc.stdout is not None
    stream = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), proc.stdout)
    reader = asyncio.create_task(output.drain(stream))
    try:
        try:
            code = await asyncio.wait_for(_wait_exit(proc), timeout_s)
        except TimeoutError:
            kill()
            await _wait_exit(proc)
            await _settle(reader, DRAIN_AFTER_KILL_S)
            so_far = output.text().rstrip("\n")
            shown = f"; its output before that:\n{so_far}" if so_far else " (it printed nothing)"
            raise ToolTimeoutError(
                f"command timed out after {timeout_s:g}s and was killed, with every process it started "
                f"(process group {pgid}){shown}\nRun it in smaller steps, or pass a larger timeout_s (at most "
                f"{limit:g}s).",
                tool=name, timeout_s=timeout_s,
            ) from None
        report = _read_report(report_r)
        left = bool(report.get("left"))
        code = int(report.get("code", code))
        if box is not None and code == -signal.SIGKILL and box.memory_exceeded():
            notes.append(f"[the sandbox's memory limit ({ctx.sandbox.memory_mb} MB) was reached: the kernel "
                         "killed the command]")
        if not await _settle(reader, EXIT_GRACE_S) or _group_alive(pgid) or left or (box is not None and await box.lingering()):
            kill()
            await _settle(reader, DRAIN_AFTER_KILL_S)
            notes.append("[background processes the command left running were stopped; the shell tool does not "
                         "keep processes alive after a command ends]")
    finally:
        if proc.poll() is None:  # cancelled by the caller (its own timeout, or the run ending)
            kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=DRAIN_AFTER_KILL_S)
        if not reader.done():  # something still holds the pipe open
            kill()
            reader.cancel()
        transport.close()
        if box is not None:
            box.close()
        _close_fds(report_r)
    text = output.text()
    parts = [text.rstrip("\n") if text else "(no output)", _exit_text(code), *notes]
    return "\n".join(parts)


TOOLS = [shell]
