"""One call's sandbox: the command line that starts it, its environment, and how to stop it all.

A :class:`Confinement` is made per call (it creates the call's cgroups when they can be made) and
closed when the call ends, which kills whatever of it is still running and removes the cgroups.
It refuses to exist when :func:`~troupe.tools.sandbox.probe.sandbox_status` says no sandbox can be
made here: the caller gets a model-visible error with the reason and the fix, never an unsandboxed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping

from troupe.runtime.errors import ToolExecutionError
from troupe.runtime.redact import is_secret_name
from troupe.tools.sandbox.limits import CallCgroup, prlimit_prefix
from troupe.tools.sandbox.mounts import bwrap_argv, python_paths, sandbox_env
from troupe.tools.sandbox.policy import SandboxRequest
from troupe.tools.sandbox.probe import SandboxStatus, sandbox_status

TEARDOWN_GRACE_S = 0.5
"""How long a sandbox's processes may take to disappear after its first process ended."""


def scrubbed_env(hidden: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without secret-looking names and without ``hidden``
    (the variables the team's secrets are read from)."""
    drop = set(hidden)
    return {k: v for k, v in (os.environ if base is None else base).items() if k not in drop and not is_secret_name(k)}


def require_sandbox(tool: str) -> SandboxStatus:
    """The probe's answer, or a model-visible refusal when no sandbox can be made here."""
    status = sandbox_status()
    if not status.available:
        raise ToolExecutionError(f"tool {tool!r} refused to run: {status.message()}", tool=tool,
                                 reason="sandbox_unavailable")
    return status


class Confinement:
    """The sandbox of one call (a context manager: leaving it kills what is left and removes the cgroups)."""

    def __init__(self, request: SandboxRequest, *, tool: str, python_packages: bool = False) -> None:
        self.request = request
        self.tool = tool
        self.status = require_sandbox(tool)
        self.python = python_paths(with_packages=python_packages)
        self.cgroup: CallCgroup | None = None
        self.pgid: int | None = None
        if self.status.limits == "cgroup":
            try:
                self.cgroup = CallCgroup(memory_mb=request.config.memory_mb, max_processes=request.config.max_processes)
            except OSError as e:
                raise ToolExecutionError(f"tool {tool!r} refused to run: the sandbox's cgroups could not be made "
                                         f"({e}); set 'sandbox: off' in the team file to run it unsandboxed",
                                         tool=tool, reason="sandbox_unavailable") from None

    def argv(self, inner: list[str]) -> list[str]:
        """The full command line: join the limits, start bubblewrap, run ``inner`` inside."""
        cfg = self.request.config
        prefix: list[str] = []
        if self.cgroup is not None:
            prefix = self.cgroup.join_prefix()
        elif self.status.limits == "prlimit" and self.status.prlimit:
            prefix = prlimit_prefix(self.status.prlimit, memory_mb=cfg.memory_mb, max_processes=cfg.max_processes)
        assert self.status.bwrap is not None
        return [*prefix, *bwrap_argv(self.status.bwrap, cfg, self.request.workspace, network=self.request.network,
                                     status_fd=None, python=self.python), *inner]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return sandbox_env(dict(base), self.request.workspace)

    def started(self, pid: int) -> None:
        """The sandbox's first process started, in a session of its own (its pid is its process group)."""
        self.pgid = pid

    def alive(self) -> bool:
        """Whether a process of the call is running now (zombies do not count)."""
        return self.cgroup is not None and any(_running(pid) for pid in self.cgroup.pids())

    async def lingering(self, grace_s: float = TEARDOWN_GRACE_S) -> bool:
        """Whether a process of the call is still running ``grace_s`` after the sandbox's first process
        ended. When the sandbox's init exits the kernel kills the rest of its pid namespace, but on a
        loaded machine those processes can stay listed in the cgroup for a moment: they are not
        processes the command left running."""
        deadline = time.monotonic() + grace_s
        while self.alive():
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.01)
        return False

    def kill(self) -> None:
        """SIGKILL the process group and every process of the call's cgroups."""
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def memory_exceeded(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_killed()

    def close(self) -> None:
        self.kill()
        if self.cgroup is not None:
            self.cgroup.remove()

    def __enter__(self) -> Confinement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie, not gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


__all__ = ["Confinement", "require_sandbox", "scrubbed_env"]
