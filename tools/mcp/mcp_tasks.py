"""MCP tasks (protocol 2025-11-25, "tasks"): a task-augmented ``tools/call``.

A tool whose ``execution.taskSupport`` is ``required`` (or ``optional``, when its ``tools`` entry sets
``task: true``) is called with ``params.task`` (a ``ttl``); the server answers at once with a task
(``CreateTaskResult``) and works on. The client polls ``tasks/get`` at the task's ``pollInterval`` (bounded),
reports each new status as a progress note (a ``tool.progress`` event: ``task working: Gathering sources...``),
then fetches the outcome with ``tasks/result``. A call cancelled or timed out on our side sends
``tasks/cancel``, so the server stops the work too.

mcp 2.3.0 has the types but no client driver, and its typed ``send_request`` validates a ``tools/call`` answer as
a ``CallToolResult``: the first request goes through the session's raw dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client
from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ToolExecutionError
from troupe.tools.mcp.policy import policy_entry

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "failed", "cancelled"})
MIN_POLL_S = 0.05
MAX_POLL_S = 5.0
DEFAULT_POLL_S = 1.0
"""When the server suggests no ``pollInterval``."""
CANCEL_WAIT_S = 5.0
"""How long a ``tasks/cancel`` may take when our call is cancelled (it is sent shielded)."""

Report = Callable[[float, float | None, str | None], Awaitable[None]]


def runs_as_task(cfg: McpServerConfig, tool: str, support: str | None) -> bool:
    """Whether ``tool`` (its listed ``execution.taskSupport`` is ``support``) is called as a task: always when the
    server requires it; when it is optional, if the tool's ``tools`` entry says ``task: true``."""
    if support == "required":
        return True
    entry = policy_entry(cfg, tool)
    return support == "optional" and entry is not None and bool(getattr(entry, "task", None))


def ttl_ms(timeout_s: float) -> int:
    """The ``ttl`` asked for: the call's timeout and a minute more to fetch the result."""
    return int((timeout_s + 60.0) * 1000)


def _poll_s(task: mt.Task) -> float:
    interval = getattr(task, "poll_interval", None)
    return DEFAULT_POLL_S if not interval else min(max(interval / 1000.0, MIN_POLL_S), MAX_POLL_S)


async def _raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    session: Any = client.session
    data: dict[str, Any] = {"method": method, "params": params}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # what send_request adds (the protocol's _meta and headers)
    return await session._dispatcher.send_raw_request(method, data.get("params"), opts)


async def _get(client: Client, task_id: str) -> mt.Task:
    return await client.session.send_request(mt.GetTaskRequest(params=mt.GetTaskRequestParams(task_id=task_id)),
                                             mt.GetTaskResult)


async def cancel(client: Client, task_id: str, server: str) -> None:
    """``tasks/cancel``, best effort and bounded (the call it belongs to is ending anyway)."""
    try:
        async with asyncio.timeout(CANCEL_WAIT_S):
            await client.session.send_request(
                mt.CancelTaskRequest(params=mt.CancelTaskRequestParams(task_id=task_id)), mt.CancelTaskResult)
    except Exception as e:  # noqa: BLE001 - the task may have ended meanwhile; the server's ttl cleans up
        logger.info("tasks/cancel of %s on MCP server %r failed: %s", task_id, server, e)


async def call_as_task(client: Client, server: str, tool: str, arguments: dict[str, Any], report: Report,
                       *, timeout_s: float) -> mt.CallToolResult:
    """Call ``tool`` as a task and wait for its outcome (see the module's docs); ``report`` gets each new status."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = await _raw(client, "tools/call", {"name": tool, "arguments": arguments,
                                                "task": {"ttl": ttl_ms(timeout_s)}})
    if "task" not in raw:  # the server ran it at once (an optional tool may)
        return mt.CallToolResult.model_validate(raw, by_name=False)
    task: mt.Task = mt.CreateTaskResult.model_validate(raw, by_name=False).task
    seen: tuple[str, str | None] | None = None
    updates = 0
    try:
        while True:
            if (task.status, task.status_message) != seen:
                seen = (task.status, task.status_message)
                updates += 1
                note = f"task {task.status}" + (f": {task.status_message}" if task.status_message else "")
                await report(float(updates), None, note)
            if task.status in TERMINAL or task.status == "input_required":
                break  # input_required: tasks/result delivers the server's queued requests (elicitation)
            await asyncio.sleep(_poll_s(task))
            task = await _get(client, task.task_id)
        if task.status == "cancelled":
            raise ToolExecutionError(f"MCP server {server!r} cancelled the task running tool {tool!r}"
                                     + (f": {task.status_message}" if task.status_message else ""),
                                     server=server, tool=tool, task_id=task.task_id)
        return await client.session.send_request(
            mt.GetTaskPayloadRequest(params=mt.GetTaskPayloadRequestParams(task_id=task.task_id)), mt.CallToolResult)
    except BaseException:
        if task.status not in TERMINAL:  # cancelled or timed out here: so is the work there
            await asyncio.shield(cancel(client, task.task_id, server))
        raise


__all__ = ["TERMINAL", "call_as_task", "cancel", "runs_as_task", "ttl_ms"]
