"""A scripted three-agent session for the crash-recovery tests and ``benchmarks/chaos.py``.

The lead splits the user's request into two tasks (``worker_a``, ``worker_b``) and waits; each
worker applies a side effect through :func:`effect` (a line appended to a ledger file, run on the
node's tool worker), writes what it got to the blackboard and replies; the lead, told by the task
notices, reads the blackboard and answers. Every model call waits a while (:func:`step_s`), so a
crash can land in the middle of any step. The answer depends on every part: the
effects, the blackboard, the tasks and the messages.

Importable by path (``benchmarks.support.recovery_team:model``) so Ray workers load it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from troupe.runtime.config import TeamConfig, parse_team
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.tools.spec import tool

HERE = "benchmarks.support.recovery_team"
WORKERS = ("worker_a", "worker_b")


def step_s(request: LLMRequest | None = None) -> float:
    """The wait per model call: ``step=S`` in the request (the user's message, a task's goal), else
    ``TROUPE_CHAOS_STEP_S``, else 0.15 s. In the request it reaches Ray workers started before the test."""
    for m in request.messages if request is not None else ():
        found = re.search(r"step=([0-9.]+)", m.content or "")
        if found:
            return float(found.group(1))
    return float(os.environ.get("TROUPE_CHAOS_STEP_S", "0.15"))


@tool(timeout_s=30)
async def effect(item: str, ledger: str) -> str:
    """Apply the side effect of an item once: append it to the ledger.

    Args:
        item: What to apply.
        ledger: The ledger file.
    """
    with open(ledger, "a") as f:
        f.write(json.dumps({"item": item, "pid": os.getpid()}) + "\n")
    return f"applied {item}"


def ledger_items(ledger: Path) -> list[str]:
    """The items applied, one per effect that ran (a duplicated side effect shows up twice)."""
    if not ledger.exists():
        return []
    return [json.loads(line)["item"] for line in ledger.read_text().splitlines() if line.strip()]


def gaps(lake: str | Path, session_id: str) -> dict[str, int]:
    """What a crash could have lost from a session's log, as counts (all zero when nothing was):
    messages sent to an agent that no mailbox took (a reply to the user is taken by the supervisor:
    its receipt is ``session.finished``), tool calls without a result, tasks created that never
    ended, and a missing ``session.finished``."""
    from troupe.runtime.eventlog.lake import query

    rows = query(lake, f"""select type, status, task_id, json_extract_string(payload, '$.id') as id,
                                  json_extract_string(payload, '$.to') as to_ from events
                           where session_id = '{session_id}'""").to_pylist()

    def ids(types: tuple[str, ...], **match: Any) -> set[Any]:
        return {r["id"] for r in rows if r["type"] in types and all(r[k] == v for k, v in match.items())}

    sent = {r["id"] for r in rows if r["type"] == "message.sent" and r["to_"] != "user"}
    created = {r["task_id"] for r in rows if r["type"] == "task.created"}
    ended = {r["task_id"] for r in rows if r["type"] == "task.status" and r["status"] in ("done", "failed", "cancelled")}
    return {
        "messages": len(sent - ids(("message.delivered",))),
        "tool_results": len(ids(("tool.call",)) - ids(("tool.result", "tool.error"))),
        "tasks": len(created - ended),
        "session_finished": int(not any(r["type"] == "session.finished" for r in rows)),
    }


def request_text(ledger: Path, tag: str, step_s: float | None = None) -> str:
    return f"apply tag={tag} ledger={ledger}" + (f" step={step_s}" if step_s is not None else "")


def expected_reply(tag: str) -> str:
    return "; ".join(f"{w}: applied {tag}-{w}" for w in WORKERS)


def _call(round_id: str, i: int, name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"{round_id}-{i}", name=name, arguments=json.dumps(arguments))


def _this_turn(request: LLMRequest) -> tuple[list[Any], list[Any]]:
    """The messages since the last user/notice message: (user messages of the turn, tool results)."""
    messages = request.messages
    start = max(i for i, m in enumerate(messages) if m.role in ("user", "system"))
    users = [m for m in messages[: start + 1] if m.role == "user"]
    tools = [m for m in messages[start + 1:] if m.role == "tool"]
    return users, tools


async def model(request: LLMRequest, agent: str) -> LLMResponse | str:
    await asyncio.sleep(step_s(request))
    users, tools = _this_turn(request)
    if agent == "lead":
        return _lead(users, tools, len(request.messages))
    return _worker(agent, users, tools, len(request.messages))


def _lead(users: list[Any], tools: list[Any], n: int) -> LLMResponse | str:
    first = next(m.content for m in users if (m.content or "").startswith("apply "))
    tag = re.search(r"tag=(\S+)", first).group(1)  # type: ignore[union-attr]
    ledger = re.search(r"ledger=(\S+)", first).group(1)  # type: ignore[union-attr]
    step = re.search(r" step=\S+", first)
    done = sum(1 for m in users if (m.content or "").startswith("Notice from tasks") and " done" in (m.content or ""))
    if len(users) == 1 and not tools:
        return LLMResponse(tool_calls=[
            *(_call(f"l{n}", i, "task_create", goal=f"item={tag}-{w} ledger={ledger}{step.group(0) if step else ''}",
                    assignee=w)
              for i, w in enumerate(WORKERS)),
            _call(f"l{n}", 9, "wait"),
        ])
    if done < len(WORKERS):
        return LLMResponse(tool_calls=[_call(f"l{n}", 0, "wait")]) if not tools else LLMResponse(text="")
    if not tools:
        return LLMResponse(tool_calls=[_call(f"l{n}", 0, "blackboard_list", prefix="facts/")])
    entries = json.loads(tools[-1].content)
    return "; ".join(f"{e['key'].split('/', 1)[1]}: {e['value']}" for e in sorted(entries, key=lambda e: e["key"]))


def _worker(agent: str, users: list[Any], tools: list[Any], n: int) -> LLMResponse | str:
    task = users[-1].content or ""
    item = re.search(r"item=(\S+)", task).group(1)  # type: ignore[union-attr]
    ledger = re.search(r"ledger=(\S+)", task).group(1)  # type: ignore[union-attr]
    if not tools:
        return LLMResponse(tool_calls=[_call(f"{agent}{n}", 0, "effect", item=item, ledger=ledger)])
    if len(tools) == 1:
        return LLMResponse(tool_calls=[_call(f"{agent}{n}", 0, "blackboard_put", key=f"facts/{agent}",
                                             value=tools[0].content)])
    return f"{agent} finished {item}"


def recovery_team(*, placement_budget_s: float = 120.0) -> TeamConfig:
    common = {"model": "m", "permissions": {"level": "L2"}}
    return parse_team({
        "name": "recovery", "entry": "lead", "default_model": "m",
        "models": {"m": {"provider": "function", "function": f"{HERE}:model"}},
        "budgets": {"max_wall_s": placement_budget_s},
        "agents": [
            {"id": "lead", "tools": ["task_create", "wait", "blackboard_list"], **common},
            *({"id": w, "tools": [f"{HERE}:effect", "blackboard_put"], **common} for w in WORKERS),
        ],
    })


__all__ = ["effect", "expected_reply", "gaps", "ledger_items", "model", "recovery_team", "request_text"]
