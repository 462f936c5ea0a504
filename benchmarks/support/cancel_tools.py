"""Slow tools for the cancellation and cleanup tests and `benchmarks/cancel.py`, one per place a tool call can run.

Each leaves evidence in ``folder``: ``<tag>.start`` (holding the pid that runs it) when it begins,
``<tag>.cancelled`` (holding the wall-clock time the cancellation arrived, for latency figures) when
it is stopped, and ``<tag>.done`` only if it ran its whole ``seconds``. So "the remote work
stopped" is checkable from the test process on any placement: ``.cancelled`` appears (for
:data:`blocked_task`, its process is gone) and ``.done`` never does.

* :data:`slow_io`: a coroutine on the node's I/O tool worker (``execution="io"``);
* :data:`slow_task`: a Ray task ``tool:slow_task`` (it declares resources, so ``execution="cpu"``);
* :data:`blocked_task`: the same, blocked in one C call (stopped only by killing its process);
* ``slow_mark`` of the stdio MCP server this module also is (``python -m benchmarks.support.cancel_tools``,
  see :func:`mcp_config`), on the node's MCP actor.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from troupe.tools.spec import tool

REPO = Path(__file__).resolve().parents[2]
SLICE_S = 0.002
"""How long :data:`slow_task` sleeps at a time: a KeyboardInterrupt reaches it within this."""
MCP_SERVER = "slowmcp"
"""The name teams give this module's MCP server (its tool is ``slowmcp__slow_mark``)."""


def mark(folder: str, name: str, text: str = "") -> None:
    """Write a marker whole or not at all (a test polling for it never reads it half-written)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    partial = Path(folder) / f".{name}.{os.getpid()}"
    partial.write_text(text)
    partial.replace(Path(folder) / name)


def mark_cancelled(folder: str, tag: str) -> None:
    mark(folder, f"{tag}.cancelled", repr(time.time()))


def cancelled_at(folder: Path, tag: str) -> float:
    """When ``tag``'s cancellation arrived (wall clock), from its marker."""
    return float((folder / f"{tag}.cancelled").read_text())


async def _wait_marked(seconds: float, folder: str, tag: str) -> str:
    mark(folder, f"{tag}.start", str(os.getpid()))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        mark_cancelled(folder, tag)
        raise
    mark(folder, f"{tag}.done")
    return f"{tag} waited {seconds}s"


@tool(timeout_s=120)
async def slow_io(seconds: float, folder: str, tag: str) -> str:
    """Wait on the node's I/O tool worker, leaving markers in folder."""
    return await _wait_marked(seconds, folder, tag)


@tool(resources={"num_cpus": 0.5}, timeout_s=120)
def slow_task(seconds: float, folder: str, tag: str) -> str:
    """Wait in a Ray task of its own, leaving markers in folder.

    A running Ray task is stopped by a KeyboardInterrupt (``ray.cancel``), raised between the short
    sleeps; the marker says it arrived.
    """
    sleep_marked(seconds, folder, tag)
    mark(folder, f"{tag}.done")
    return f"{tag} waited {seconds}s"


def sleep_marked(seconds: float, folder: str, tag: str) -> None:
    """Sleep in short slices, leaving ``<tag>.start``, and ``<tag>.cancelled`` when a
    KeyboardInterrupt (``ray.cancel``) arrives between them."""
    mark(folder, f"{tag}.start", str(os.getpid()))
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(SLICE_S)
    except KeyboardInterrupt:
        mark_cancelled(folder, tag)
        raise


@tool(resources={"num_cpus": 0.5}, timeout_s=120)
def blocked_task(seconds: float, folder: str, tag: str) -> str:
    """Wait in a Ray task of its own, blocked in one C call, leaving markers in folder.

    The KeyboardInterrupt of ``ray.cancel`` cannot reach it before the sleep ends: it never writes
    ``.cancelled``, and only killing its process stops it.
    """
    mark(folder, f"{tag}.start", str(os.getpid()))
    time.sleep(seconds)
    mark(folder, f"{tag}.done")
    return f"{tag} waited {seconds}s"


def mcp_config(**overrides: Any) -> dict[str, Any]:
    """A team's ``mcpServers`` entry for this module as a stdio MCP server."""
    return {"command": sys.executable, "args": ["-m", "benchmarks.support.cancel_tools"], "cwd": str(REPO),
            "timeout_s": 120, "connect_timeout_s": 30, **overrides}


def main() -> None:
    """Serve ``slow_mark`` over stdio (the SDK applies the client's ``notifications/cancelled``
    by cancelling the handler, which is what leaves ``.cancelled``)."""
    from mcp.server.mcpserver import MCPServer

    server: MCPServer = MCPServer("troupe-cancel-test", version="1.0", log_level="WARNING")

    @server.tool()
    async def slow_mark(seconds: float, folder: str, tag: str) -> str:
        """Wait, leaving markers in folder."""
        return await _wait_marked(seconds, folder, tag)

    server.run("stdio")


if __name__ == "__main__":
    main()
