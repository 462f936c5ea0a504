"""The team the ``troupe acp`` tests serve, and its deterministic model.

The lead answers by the user's message:

- ``plan and write``: creates a task (the plan), writes ``notes.md`` with ``write_notes`` (it needs the
  user's approval: a permission request to the ACP client), marks the task done, then replies with what the
  write returned (or that it was refused).
- ``slow``: creates a task, then thinks for a minute (the tests cancel it).
- ``what did I ask first?``: the first user message in its context, and whether the context notes a cancelled turn.
- anything else: ``echo: <message>``.

It also prints to stdout on every call: ``troupe acp`` must keep that off the protocol.
"""

from __future__ import annotations

import asyncio
import json

from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool

TEAM = """\
name: acp-team
entry: lead
default_model: fn
models:
  fn: {provider: function, function: "tests.support.acp_team:lead_reply"}
agents:
  - id: lead
    role: answers the editor's user
    tools: [task_create, task_update, "tests.support.acp_team:write_notes"]
    permissions: {level: L2}
"""


@tool(needs_approval=True, timeout_s=5, execution="inline")
def write_notes(ctx: ToolContext, path: str, content: str) -> str:
    """Write a file in the session's workspace (needs the user's approval)."""
    assert ctx.workspace is not None
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    (ctx.workspace / path).write_text(content)
    return f"wrote {len(content)} characters to {path}"


def _call(n: int, name: str, **arguments: object) -> ToolCall:
    return ToolCall(id=f"c{n}", name=name, arguments=json.dumps(arguments))


async def lead_reply(request: LLMRequest, agent: str) -> LLMResponse | str:
    print("a model function printing to stdout", flush=True)  # must not reach the protocol
    user = next((m.content or "" for m in reversed(request.messages) if m.role == "user"), "")
    last = request.messages[-1]
    tool_results = [m for m in request.messages if m.role == "tool"]
    if user.strip() == "plan and write":
        if last.role == "user":
            return LLMResponse(tool_calls=[_call(1, "task_create", goal="write the notes", task_id="t-notes")])
        if len(tool_results) == 1:
            return LLMResponse(text="Writing the notes.", tool_calls=[_call(2, "write_notes", path="notes.md", content="hello from the team")])
        if len(tool_results) == 2:
            return LLMResponse(tool_calls=[_call(3, "task_update", task_id="t-notes", status="done")])
        return f"wrote notes: {tool_results[1].content}"
    if user.strip() == "slow":
        if last.role == "user":
            return LLMResponse(tool_calls=[_call(1, "task_create", goal="a long job", task_id="t-long")])
        await asyncio.sleep(60)
        return "too late"
    if user.strip() == "what did I ask first?":
        first = next(m.content for m in request.messages if m.role == "user")
        noted = any("was cancelled" in (m.content or "") for m in request.messages if m.role == "assistant")
        return f"you first asked: {first} (a cancelled turn noted: {noted})"
    return f"echo: {user}"


__all__ = ["TEAM", "lead_reply", "write_notes"]
