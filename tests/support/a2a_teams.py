"""Deterministic teams for the A2A tests: a function model for ``troupe a2a serve``, and one for a lead that
assigns a task to (and messages) a remote A2A member."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.tools.spec import tool

SERVED_TEAM = """\
name: greeter
description: Greets; writes a note to the blackboard first. "sleep N" takes N seconds; "write PATH" writes a file (with approval, which the policy gives to "write PATH trusted").
entry: greeter
default_model: fn
models:
  fn: {provider: function, function: "tests.support.a2a_teams:greeter"}
approval_policy:  # "write PATH trusted" is approved by rule, without asking the client
  default: ask
  rules:
    - {tool: write_mark, when: {trusted: [true]}, decision: "yes"}
agents:
  - id: greeter
    role: greets the caller
    instructions: Answer every greeting.
    tools: [blackboard_put, "tests.support.a2a_teams:write_mark"]
  - id: helper
    role: idle helper
"""

MEMBER_TEAM = """\
name: with-remote
entry: lead
default_model: fn
models:
  fn: {provider: function, function: "tests.support.a2a_teams:lead"}
agents:
  - id: lead
    role: asks the calculator
    tools: [assign_tasks, send_message, wait]
  - id: calc
    role: a remote calculator
    publish_results: true
    a2a: {url: "%s"}
"""


@tool(needs_approval=True, timeout_s=10, execution="inline")
def write_mark(path: str, trusted: bool = False) -> str:
    """Write a marker file (a side effect that needs the caller's approval)."""
    Path(path).write_text("written")
    return f"wrote {path}"


async def greeter(request: LLMRequest, agent: str) -> LLMResponse | str:
    last = request.messages[-1]
    if last.role == "tool" and last.tool_call_id == "b1":
        return f"book: {last.content}"
    if last.role == "tool" and last.tool_call_id == "w1":
        if "trusted" in (request.messages[-3].content or ""):
            await asyncio.sleep(0.5)  # the turn still runs while the server reads the policy's approval events
        return f"write: {last.content}"
    if last.role == "tool":
        user = next(m.content or "" for m in reversed(request.messages) if m.role == "user")
        return f"echo: {user}"
    words = (last.content or "").split()
    if len(words) in (2, 3) and words[0] == "write":
        arguments = {"path": words[1], **({"trusted": True} if words[2:] == ["trusted"] else {})}
        return LLMResponse(tool_calls=[ToolCall(id="w1", name="write_mark", arguments=json.dumps(arguments))])
    if words == ["book"]:  # the MCP test server's tool that asks a form (elicitation)
        return LLMResponse(tool_calls=[ToolCall(id="b1", name="own__book", arguments="{}")])
    if len(words) == 2 and words[0] == "sleep":
        await asyncio.sleep(float(words[1]))
        return "slept"
    return LLMResponse(tool_calls=[ToolCall(id="bb1", name="blackboard_put",
                                            arguments=json.dumps({"key": "notes/greeting", "value": "hi there"}))])


def booking_served_team(timeout_s: float = 30.0) -> str:
    """:data:`SERVED_TEAM` with the repo's MCP test server (``own``): "book" calls its ``book`` tool, which asks
    the user a form (``name``: string, required; ``seats``: integer, default 2) through MCP elicitation."""
    from tests.support.mcp_servers import stdio_config

    team = yaml.safe_load(SERVED_TEAM)
    team["mcpServers"] = {"own": stdio_config(elicitation_timeout_s=timeout_s).model_dump(mode="json",
                                                                                         exclude_defaults=True)}
    greeter = team["agents"][0]
    greeter["tools"].append("own__book")
    greeter["permissions"] = {"level": "L2"}
    return yaml.safe_dump(team)


def lead(request: LLMRequest, agent: str) -> LLMResponse | str:
    """``add ...``: assign it to calc and answer with the result; ``ask ...``: message calc and wait for its reply."""
    last = request.messages[-1]
    if last.role == "tool" and last.tool_call_id == "m1":
        return LLMResponse(tool_calls=[ToolCall(id="w1", name="wait", arguments="{}")])
    if last.role == "tool":
        return f"calc says: {last.content}"
    text = last.content or ""
    if text.startswith("Reply from calc:"):
        return "calc replied: " + text.removeprefix("Reply from calc:").strip()
    if text.startswith("ask "):
        return LLMResponse(tool_calls=[ToolCall(id="m1", name="send_message",
                                                arguments=json.dumps({"to": "calc", "text": text[4:]}))])
    return LLMResponse(tool_calls=[ToolCall(id="a1", name="assign_tasks",
                                            arguments=json.dumps({"tasks": [{"goal": text, "assignee": "calc"}]}))])


__all__ = ["MEMBER_TEAM", "SERVED_TEAM", "booking_served_team", "greeter", "lead", "write_mark"]
