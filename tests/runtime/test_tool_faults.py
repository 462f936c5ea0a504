"""Tool faults in whole in-process sessions: a tool that hangs, raises, or returns something huge, and
an MCP server that hangs, floods or dies. Each time the agent reads an error (or a capped result)
and the session goes on; a dead MCP server is started again on its next use."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from tests.support.mcp_servers import stdio_config
from troupe.runtime.agent.toolexec import MAX_RESULT_CHARS, MAX_STRUCTURED_CHARS
from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team
from troupe.runtime.errors import ToolExecutionError
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.session.supervisor import SessionResult, SessionStatus
from troupe.tools.spec import tool


def outcomes(lake: Path, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, tool, payload from events where session_id='{session_id}' "
           "and type in ('tool.result', 'tool.error') order by ts, seq")
    return [{**json.loads(r["payload"]), "event": r["type"], "tool": r["tool"]} for r in rows(lake, sql)]


def model_read(lake: Path, session_id: str) -> list[str]:
    """What each LLM request ended with: after a tool round, the (last) tool result the model read."""
    sql = (f"select json_extract_string(payload, '$.last') last from events where session_id='{session_id}' "
           "and type='llm.request' order by ts, seq")
    return [r["last"] for r in rows(lake, sql)]


async def run(troupe: Troupe, cfg: Any) -> SessionResult:
    result = await troupe.run(cfg, "go", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    return result


# --- python tools ------------------------------------------------------------------------------
async def test_a_hanging_tool_times_out_into_an_error_result(troupe: Troupe, lake: Path) -> None:
    @tool(name="hang", timeout_s=0.2)
    async def hang() -> str:
        await asyncio.sleep(60)
        return "never"

    @tool(name="hang_twice", timeout_s=0.2, idempotent=True, retries=1)
    async def hang_twice() -> str:
        await asyncio.sleep(60)
        return "never"

    troupe.registry.register(hang)
    troupe.registry.register(hang_twice)
    cfg = team([{"id": "a", "tools": ["hang", "hang_twice"]}], scripts={"a": [
        {"tool_calls": [call("hang"), call("hang_twice")]}, {"text": "moved on"},
    ]})
    started = time.monotonic()
    result = await run(troupe, cfg)
    assert result.reply == "moved on" and time.monotonic() - started < 10
    once, twice = outcomes(lake, result.session_id)
    assert once["event"] == "tool.error" and once["error_type"] == "ToolTimeoutError"
    assert once["result"].startswith("Error: tool 'hang' timed out after 0.2s")
    assert "timed out after 0.2s (2 attempts)" in twice["result"]  # an idempotent tool is retried first
    assert "timed out" in model_read(lake, result.session_id)[-1]


async def test_a_raising_tool_gives_the_exception_type_and_message(troupe: Troupe, lake: Path) -> None:
    @tool(name="boom")
    async def boom(n: int) -> str:
        raise ValueError(f"cannot handle n={n}")

    @tool(name="boom_sync")
    def boom_sync() -> str:
        raise KeyError("missing-key")

    @tool(name="refuse")
    async def refuse() -> str:
        raise ToolExecutionError("the archive is read-only; write somewhere else")

    for t in (boom, boom_sync, refuse):
        troupe.registry.register(t)
    cfg = team([{"id": "a", "tools": ["boom", "boom_sync", "refuse"]}], scripts={"a": [
        {"tool_calls": [call("boom", n=3), call("boom_sync"), call("refuse")]}, {"text": "handled"},
    ]})
    result = await run(troupe, cfg)
    assert result.reply == "handled"
    results = {o["tool"]: o for o in outcomes(lake, result.session_id)}
    assert results["boom"]["result"] == "Error: tool 'boom' raised ValueError: cannot handle n=3"
    assert results["boom_sync"]["result"] == "Error: tool 'boom_sync' raised KeyError: 'missing-key'"
    assert results["refuse"]["result"] == "Error: the archive is read-only; write somewhere else"
    assert {k: o["error_type"] for k, o in results.items()} == {
        "boom": "ValueError", "boom_sync": "KeyError", "refuse": "ToolExecutionError"}


async def test_a_huge_result_is_capped_with_a_note_the_model_reads(troupe: Troupe, lake: Path) -> None:
    @tool(name="flood")
    async def flood() -> str:
        return "y" * 2_000_000

    @tool(name="flood_rows")
    async def flood_rows() -> list[int]:
        return list(range(300_000))

    troupe.registry.register(flood)
    troupe.registry.register(flood_rows)
    read: dict[str, str] = {}

    def model(request: LLMRequest, agent: str) -> LLMResponse:
        if request.messages[-1].role != "tool":
            return LLMResponse(tool_calls=[ToolCall(id="text", name="flood"), ToolCall(id="rows", name="flood_rows")])
        read.update({m.tool_call_id or "": m.content or "" for m in request.messages if m.role == "tool"})
        return LLMResponse(text="skimmed")

    module = types.ModuleType("troupe_test_flood_model")
    module.model = model  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        result = await run(troupe, team([{"id": "a", "tools": ["flood", "flood_rows"]}], function=f"{module.__name__}:model"))
    finally:
        del sys.modules[module.__name__]
    assert result.reply == "skimmed"
    assert read["text"] == "y" * MAX_RESULT_CHARS + f"\n[truncated: {2_000_000 - MAX_RESULT_CHARS} more characters]"
    rows_text = json.dumps(list(range(300_000)))
    assert read["rows"] == rows_text[:MAX_RESULT_CHARS] + f"\n[truncated: {len(rows_text) - MAX_RESULT_CHARS} more characters]"
    # The record holds what the model read (capped, with its note), never the flood itself.
    assert all(o["event"] == "tool.result" and o["result"] in (read["text"], read["rows"])
               for o in outcomes(lake, result.session_id))


# --- MCP servers ---------------------------------------------------------------------------------
def mcp_team(scripts: list[dict[str, Any]], **server: Any) -> Any:
    return parse_team({
        "name": "mcp-faults", "entry": "lead", "default_model": "m", "placement": "packed",
        "mcpServers": {"own": stdio_config(**server).model_dump(exclude_defaults=True)},
        "models": {"m": {"provider": "scripted", "scripts": {"lead": scripts}}},
        "agents": [{"id": "lead", "tools": ["own__pid", "own__crash", "own__slow", "own__echo"],
                    "permissions": {"level": "L2"}}],
    })


async def test_a_dead_mcp_server_is_an_error_result_then_restarted(troupe: Troupe, lake: Path) -> None:
    cfg = mcp_team([{"tool_calls": [call("own__pid")]}, {"tool_calls": [call("own__crash")]},
                    {"tool_calls": [call("own__pid")]}, {"text": "survived"}])
    result = await run(troupe, cfg)
    assert result.reply == "survived"
    first, crashed, again = outcomes(lake, result.session_id)
    assert first["event"] == again["event"] == "tool.result"
    assert crashed["event"] == "tool.error" and "restarted on next use" in crashed["result"]
    assert "exited with code 3" in crashed["result"]
    assert first["result"] != again["result"]  # a new server process answered
    assert "restarted on next use" in model_read(lake, result.session_id)[2]


async def test_a_hanging_or_flooding_mcp_tool_leaves_the_server_usable(troupe: Troupe, lake: Path) -> None:
    huge = "z" * 60_000
    cfg = mcp_team([{"tool_calls": [call("own__slow", seconds=30)]}, {"tool_calls": [call("own__echo", text=huge)]},
                    {"tool_calls": [call("own__echo", text="still here")]}, {"text": "fine"}], timeout_s=0.5)
    started = time.monotonic()
    result = await run(troupe, cfg)
    assert result.reply == "fine" and time.monotonic() - started < 30
    slow, flood, echo = outcomes(lake, result.session_id)
    assert slow["event"] == "tool.error" and slow["error_type"] == "ToolTimeoutError"
    assert "timed out after 0.5s" in slow["result"]
    assert flood["event"] == "tool.result" and len(flood["result"]) <= MAX_RESULT_CHARS + 100
    # The structured copy of the flood is a bounded preview in the event, not 60k characters.
    structured = flood["structured"]
    assert len(json.dumps(structured)) < MAX_STRUCTURED_CHARS
    assert structured["truncated"] is True and structured["chars"] > 60_000
    assert echo["event"] == "tool.result" and echo["result"] == "still here"
