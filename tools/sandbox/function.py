"""Run a cpu tool's function in a child Python inside the sandbox (``@tool(sandbox=True)``).

The function and its arguments go to the child pickled with cloudpickle over stdin; its value or
exception comes back the same way over stdout. The child sees the Python install, its
site-packages and ``troupe``'s own folders read-only, the workspace read-write, and nothing else of
the host. On timeout or cancel the call's process group and cgroup are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from troupe.runtime.errors import ToolExecutionError, ToolTimeoutError
from troupe.tools.sandbox.confine import Confinement, scrubbed_env
from troupe.tools.sandbox.mounts import python_paths
from troupe.tools.sandbox.policy import SandboxRequest
from troupe.tools.workspace import Workspace

if TYPE_CHECKING:
    from troupe.tools.context import ToolContext
    from troupe.tools.spec import Tool

CHILD = "troupe.tools.sandbox.child"
STDERR_SHOWN = 2_000
BACKSTOP_S = 1.0
"""The sandbox kills a call this long after its tool's timeout, should the caller's own cancel not reach it."""


def _pickled(target: Callable[..., Any] | type, kwargs: dict[str, Any]) -> bytes:
    """``(target, kwargs)`` for the child. The target's module goes by value when the child could not import
    it (a module outside the Python install, its site-packages and ``troupe``: a script, a test file)."""
    module = sys.modules.get(getattr(target, "__module__", "") or "")
    visible = python_paths(with_packages=True)
    origin = os.path.realpath(getattr(module, "__file__", None) or "/") if module is not None else "/"
    by_value = module is not None and module.__name__ != "__main__" and not any(
        origin.startswith(p.rstrip("/") + "/") for p in visible)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps((target, kwargs))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


async def run_function(target: Callable[..., Any] | type, kwargs: dict[str, Any], request: SandboxRequest,
                       *, tool: str = "tool") -> Any:
    """``target(**kwargs)`` run inside the sandbox ``request`` describes; its value, or its exception raised here."""
    payload = _pickled(target, kwargs)
    Path(request.workspace).mkdir(parents=True, exist_ok=True)  # a Ray task may run on a node that never had it
    with Confinement(request, tool=tool, python_packages=True) as box:
        proc = await asyncio.create_subprocess_exec(
            *box.argv([sys.executable, "-I", "-m", CHILD]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=request.workspace, env=box.env(scrubbed_env(request.hidden_env)), start_new_session=True,
        )
        box.started(proc.pid)
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), request.timeout_s)
        except TimeoutError:
            box.kill()
            raise ToolTimeoutError(f"tool {tool!r} timed out after {request.timeout_s:g}s in its sandbox and was "
                                   "killed, with every process it started", tool=tool) from None
        finally:
            if proc.returncode is None:  # cancelled (the scheduler's timeout, or the turn ending)
                box.kill()
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())
        memory_hit = box.memory_exceeded()
    if out:
        try:
            kind, value = cloudpickle.loads(out)
        except Exception as e:  # noqa: BLE001
            raise ToolExecutionError(f"tool {tool!r}: its sandboxed process answered garbage ({e})", tool=tool) from None
        if kind == "error":
            raise value
        return value
    tail = err.decode(errors="replace")[-STDERR_SHOWN:].strip()
    why = f"memory limit of {request.config.memory_mb} MB reached" if memory_hit else f"exit status {proc.returncode}"
    raise ToolExecutionError(f"tool {tool!r} died in its sandbox ({why}) before answering" +
                             (f"; its last output:\n{tail}" if tail else ""), tool=tool)


class SandboxedCall:
    """A cpu tool's target that runs in the sandbox when called (picklable: it travels in a Ray task)."""

    def __init__(self, target: Callable[..., Any] | type, request: SandboxRequest, tool: str) -> None:
        self.target = target
        self.request = request
        self.tool = tool

    async def __call__(self, **kwargs: Any) -> Any:
        return await run_function(self.target, kwargs, self.request, tool=self.tool)


def sandboxed_target(tool: Tool, ctx: ToolContext, timeout_s: float | None = None) -> Callable[..., Any] | type:
    """What a dispatcher runs for ``tool``: its function, or a :class:`SandboxedCall` when the tool
    opted in (``@tool(sandbox=True)``) and the team's sandbox is on."""
    if not tool.spec.sandbox or not ctx.sandbox.enabled:
        return tool.fn
    workspace = str(Workspace.of(ctx, tool.name).root)
    backstop = None if timeout_s is None else timeout_s + BACKSTOP_S
    return SandboxedCall(tool.fn, SandboxRequest.for_context(ctx, workspace, timeout_s=backstop), tool.name)


__all__ = ["SandboxedCall", "run_function", "sandboxed_target"]
