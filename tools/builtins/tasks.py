"""Task tools: split work into a task tree, assign it, track it, wait for it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from troupe.runtime.errors import ToolArgumentError
from troupe.runtime.ids import TASKS
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool


def writer_marks(ctx: ToolContext, text: str, *, vouch: bool = True) -> dict[str, Any]:
    """Keyword arguments marking what a tainted agent writes into the task registry (risk scoring): its
    untrusted sources and, for a goal, the values in ``text`` its user vouches for; none when clean."""
    if ctx.taint is None or not ctx.taint.sources:
        return {}
    return {"taint": ctx.taint.sources[:10], **({"vouched": ctx.taint.vouched_parts(text)} if vouch else {})}


def read_tasks(ctx: ToolContext, tasks: list[Any]) -> None:
    """The calling agent reads these tasks (goals, outputs) in a tool result: what a tainted agent wrote taints it."""
    if ctx.taint is None:
        return
    for t in tasks:
        if getattr(t, "taint", None) and t.created_by != ctx.agent:
            ctx.taint.read(f"task {t.id} from {t.created_by}", f"{t.goal}\n{json.dumps(t.input, default=str)}")
        if getattr(t, "output_taint", None) and t.output_by != ctx.agent:
            text = "\n".join(v if isinstance(v, str) else json.dumps(v, default=str) for v in (t.output, t.error) if v is not None)
            ctx.taint.read(f"task {t.id} from {t.output_by or t.assignee}", text)


def _task(t: Any) -> dict[str, Any]:
    return {"id": t.id, "goal": t.goal, "status": t.status, "assignee": t.assignee, "parent_id": t.parent_id,
            "output": t.output, "error": t.error}


@tool(name="task_create", level="L1")
async def task_create(
    ctx: ToolContext, goal: str, assignee: str | None = None, task_id: str | None = None, input: Any = None,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """Create a task; an assignee is told about it and its reply completes it.

    Args:
        goal: What must be done.
        assignee: Agent id to do it (omit to leave it unassigned).
        task_id: Optional id of your choosing, e.g. "t-mul".
        input: Optional JSON input for the task.
        parent_id: Parent task (defaults to the task you are working on).
    """
    if assignee is not None and assignee not in ctx.services.members():
        raise ToolArgumentError(
            f"unknown assignee {assignee!r}; agents in this session: {', '.join(ctx.services.members())}", tool="task_create"
        )
    task = await ctx.services.call(
        TASKS, "create", goal=goal, created_by=str(ctx.agent), assignee=assignee, task_id=task_id, input=input,
        parent_id=parent_id or ctx.task_id, **writer_marks(ctx, f"{goal}\n{json.dumps(input, default=str)}"),
    )
    return _task(task)


@tool(name="task_update", level="L1")
async def task_update(
    ctx: ToolContext, task_id: str,
    status: Literal["running", "blocked", "done", "failed", "cancelled"] | None = None,
    output: Any = None, error: str | None = None,
) -> dict[str, Any]:
    """Change a task's status or record its output.

    Args:
        task_id: The task.
        status: New status.
        output: The task's result (JSON).
        error: Why it failed.
    """
    task = await ctx.services.call(TASKS, "update", task_id=task_id, by=str(ctx.agent), status=status, output=output, error=error,
                                   **writer_marks(ctx, "", vouch=False))
    return _task(task)


@tool(name="task_list", level="L0", idempotent=True)
async def task_list(
    ctx: ToolContext, status: Literal["pending", "running", "blocked", "done", "failed", "cancelled"] | None = None,
    assignee: str | None = None,
) -> list[dict[str, Any]]:
    """List tasks, optionally by status or assignee.

    Args:
        status: Only tasks in this status.
        assignee: Only tasks assigned to this agent.
    """
    tasks = await ctx.services.call(TASKS, "list", status=status, assignee=assignee)
    read_tasks(ctx, tasks)
    return [_task(t) for t in tasks]


@tool(name="task_wait", level="L0", timeout_s=3600)
async def task_wait(ctx: ToolContext, task_ids: list[str], timeout_s: float = 600) -> list[dict[str, Any]]:
    """Wait until all the given tasks are finished and return them with their outputs.

    Args:
        task_ids: Tasks to wait for.
        timeout_s: Give up after this many seconds.
    """
    try:
        tasks = await ctx.services.call(TASKS, "wait", task_ids=task_ids, timeout=timeout_s)
    except TimeoutError:
        raise ToolArgumentError(f"tasks {task_ids} did not finish within {timeout_s:g}s", tool="task_wait") from None
    ctx.forget_notices(task_ids)
    read_tasks(ctx, tasks)
    return [_task(t) for t in tasks]


class Assignment(BaseModel):
    assignee: str = Field(description="Agent id to do it.")
    goal: str = Field(description="What that agent must do, in one sentence.")


@tool(name="assign_tasks", level="L1", timeout_s=3600)
async def assign_tasks(ctx: ToolContext, tasks: list[Assignment], timeout_s: float = 600) -> str:
    """Split work into tasks for other agents, run them in parallel, and return their results.

    Args:
        tasks: One entry per task: {"assignee": agent id, "goal": what to do}.
        timeout_s: Give up after this many seconds.
    """
    if not tasks:
        raise ToolArgumentError("give at least one task: [{\"assignee\": ..., \"goal\": ...}]", tool="assign_tasks")
    # Each task carries the request it serves, so a worker sees the numbers a terse goal may omit.
    context = {"context": ctx.request} if ctx.request else None
    created = [await task_create.invoke({"goal": t.goal, "assignee": t.assignee, "input": context}, ctx) for t in tasks]
    done = await task_wait.invoke({"task_ids": [c["id"] for c in created], "timeout_s": timeout_s}, ctx)
    return "\n".join(
        f"{d['goal']} = {d['output']}" if d["status"] == "done" else f"{d['goal']}: {d['status']} ({d['error']})"
        for d in done
    )


TOOLS = [task_create, task_update, task_list, task_wait, assign_tasks]
