"""A team for the turn-cancellation tests (local, Ray, HTTP): one agent, ``a``, whose model follows the user.

- ``wait in FOLDER``: calls ``io_wait`` for 30 s (it leaves ``slow.start``, then ``slow.cancelled`` when stopped);
- ``ask in FOLDER``: creates a task, then calls ``guarded`` (it needs approval) and waits for the decision;
- anything else: says what the user asked first, how many calls in its context read as stopped, and whether
  it holds the note of a cancelled turn (``first: ... | stopped: n | noted: bool``).

The model refuses a history with a tool call left without a result, as providers do (HTTP 400).
"""

from __future__ import annotations

import json
from typing import Any

from tests.runtime.teams import team
from troupe.runtime.agent.context import STOPPED_RESULT
from troupe.runtime.config import TeamConfig
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.tools.spec import tool


@tool(needs_approval=True, timeout_s=60, execution="inline")
def guarded(note: str) -> str:
    """A call that needs the user's approval."""
    return f"did {note}"


def reply(request: LLMRequest, agent: str) -> LLMResponse | str:
    messages = request.messages
    asked = {c.id for m in messages if m.role == "assistant" for c in m.tool_calls}
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    if asked - answered:
        raise ValueError(f"invalid history: tool calls {sorted(asked - answered)} have no result")
    users = [m.content or "" for m in messages if m.role == "user"]
    text, last = users[-1], messages[-1]
    if text.startswith("wait in ") and last.role == "user":
        folder = text.removeprefix("wait in ")
        return LLMResponse(tool_calls=[ToolCall(id="w1", name="io_wait",
                                                arguments=json.dumps({"seconds": 30, "folder": folder, "tag": "slow"}))])
    if text.startswith("ask in ") and last.role == "user":
        return LLMResponse(tool_calls=[ToolCall(id="t1", name="task_create", arguments=json.dumps({"goal": "a chore"}))])
    if text.startswith("ask in ") and last.role == "tool" and last.tool_call_id == "t1":
        return LLMResponse(tool_calls=[ToolCall(id="g1", name="guarded", arguments=json.dumps({"note": "it"}))])
    stopped = sum(1 for m in messages if m.role == "tool" and m.content == STOPPED_RESULT)
    noted = any("was cancelled by the user" in (m.content or "") for m in messages if m.role == "assistant")
    return f"first: {users[0]} | stopped: {stopped} | noted: {noted}"


def cancel_team(**extra: Any) -> TeamConfig:
    return team([{"id": "a", "tools": ["tests.support.tool_fixtures:io_wait", "task_create",
                                       "tests.support.turn_cancel_team:guarded"],
                  "permissions": {"level": "L2"}}],
                function="tests.support.turn_cancel_team:reply", **extra)


__all__ = ["cancel_team", "guarded", "reply"]
