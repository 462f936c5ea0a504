"""Messaging tools: talk to agents, broadcast to a group, delegate to a child agent, wait."""

from __future__ import annotations

from troupe.runtime.config import AgentSpec
from troupe.runtime.errors import ToolArgumentError
from troupe.runtime.ids import TASKS, AgentId
from troupe.runtime.messages import Envelope, Trace
from troupe.tools.builtins.tasks import read_tasks, writer_marks
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool


@tool(name="send_message", level="L1")
async def send_message(ctx: ToolContext, to: str, text: str) -> str:
    """Send a message to another agent of the session; it will reply to you in a later turn.

    Args:
        to: Recipient agent id.
        text: The message.
    """
    members = ctx.services.members()
    if to not in members or to == ctx.agent:
        raise ToolArgumentError(f"cannot send to {to!r}; agents you can message: {', '.join(m for m in members if m != ctx.agent)}",
                                tool="send_message")
    env = Envelope(session_id=ctx.session_id, sender=ctx.agent, recipient=AgentId(to), content=text,
                   trace=Trace(run_id=ctx.run_id, task_id=ctx.task_id))
    await ctx.send_message(env)
    return f"sent to {to} (message {env.id})"


@tool(name="broadcast", level="L1")
async def broadcast(ctx: ToolContext, group: str, text: str) -> str:
    """Send a message to every agent in a group.

    Args:
        group: Group name (agents list their groups in the team file).
        text: The message.
    """
    env = Envelope(session_id=ctx.session_id, sender=ctx.agent, topic=group, content=text,
                   trace=Trace(run_id=ctx.run_id, task_id=ctx.task_id))
    await ctx.send_message(env)
    return f"broadcast to group {group!r} (message {env.id})"


@tool(name="wait", level="L0")
async def wait(ctx: ToolContext) -> str:
    """End your turn without replying; you will be woken by the next message or notice."""
    ctx.end_turn()
    return "waiting for messages"


@tool(name="delegate", level="L1", timeout_s=3600)
async def delegate(
    ctx: ToolContext, name: str, goal: str, instructions: str = "", tools: list[str] | None = None,
    timeout_s: float = 600,
) -> str:
    """Spawn a child agent for a sub-goal, wait for its answer, and return it.

    Args:
        name: Short name for the child (letters, digits, '_' or '-').
        goal: What the child must do.
        instructions: Extra system instructions for the child.
        tools: Tools the child may use (a subset of yours; default none).
        timeout_s: Give up after this many seconds.
    """
    granted = set(ctx.spec.tools)
    wanted = list(tools or [])
    extra = [t for t in wanted if t not in granted]
    if extra:
        raise ToolArgumentError(f"a child can only get tools you have; you lack {extra}", tool="delegate")
    try:
        child = AgentSpec(
            id=AgentId(f"{ctx.agent}.{name}"), name=name, role=f"helper of {ctx.agent}", instructions=instructions,
            tools=wanted, permissions=ctx.spec.permissions, model=ctx.spec.model,
            max_rounds=ctx.spec.max_rounds, context_tokens=ctx.spec.context_tokens,
        )
    except ValueError as e:
        raise ToolArgumentError(f"invalid child name {name!r}: {e}", tool="delegate") from None
    child_id = await ctx.services.spawn_child(child, parent=ctx.agent)
    try:
        task = await ctx.services.call(TASKS, "create", goal=goal, created_by=str(ctx.agent), assignee=str(child_id),
                                       parent_id=ctx.task_id, **writer_marks(ctx, goal))
        try:
            [done] = await ctx.services.call(TASKS, "wait", task_ids=[task.id], timeout=timeout_s)
        except TimeoutError:
            raise ToolArgumentError(f"child {child_id} did not finish within {timeout_s:g}s", tool="delegate") from None
        ctx.forget_notices([task.id])
        read_tasks(ctx, [done])
    finally:
        await ctx.services.terminate(child_id)
    if done.status != "done":
        return f"child {child_id} ended task {task.id} as {done.status}: {done.error or done.output}"
    return str(done.output)


TOOLS = [send_message, broadcast, wait, delegate]
