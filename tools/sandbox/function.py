"""Run a cpu tool's function in a child Python inside the sandbox (``@tool(sandbox=True)``).

The function and its arguments go to the child pickled with cloudpickle over stdin; its value or
exception comes back the same way over stdout. The child sees the Python install, its
site-packages and ``troupe``'s own folders read-only, the workspace read-write, and nothing else of
the host. On timeout or cancel the call's process group and cgroup are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

from troupe.runtime.errors import ToolExecutionError, ToolTimeoutError
from troupe.tools.sandbox.confine import Confinement, scrubbed_env
from troupe.tools.sandbox.policy import SandboxRequest

CHILD = "troupe.tools.sandbox.child"
STDERR_SHOWN = 2_000


async def run_function(target: Callable[..., Any] | type, kwargs: dict[str, Any], request: SandboxRequest,
                       *, tool: str = "tool") -> Any:
    """``target(**kwargs)`` run inside the sandbox ``request`` describes; its value, or its exception raised here."""
    payload = cloudpickle.dumps((target, kwargs))
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


__all__ = ["run_function"]
