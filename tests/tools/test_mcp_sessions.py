"""Agents using MCP tools in whole sessions: real third-party servers, our own server over stdio and
streamable HTTP, in-process and on Ray (where each node's MCP actor holds the connections)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import call
from tests.support.mcp_servers import HttpTestServer, stdio_config
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus


def mcp_team(servers: dict[str, Any], agents: list[dict[str, Any]], scripts: dict[str, list[dict[str, Any]]],
             **extra: Any) -> dict[str, Any]:
    return {
        "name": "mcp", "entry": agents[0]["id"], "default_model": "m", "placement": "packed",
        "mcpServers": {k: v if isinstance(v, dict) else v.model_dump(exclude_defaults=True) for k, v in servers.items()},
        "models": {"m": {"provider": "scripted", "scripts": scripts},
                   "judge": {"provider": "scripted", "scripts": {"*": [{"text": "forty-two"}]}}},
        "agents": agents, **extra,
    }


def tool_events(lake: Path, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, tool, agent, status, payload from events where session_id='{session_id}' and type in "
           "('tool.result','tool.error','tool.progress','guardrail.denied') order by ts, seq")
    return [{**r, **json.loads(r.pop("payload"))} for r in query(lake, sql).to_pylist()]


def last_inputs(lake: Path, session_id: str, agent: str) -> list[str]:
    """What each LLM request of ``agent`` ended with (a tool result, after a tool round)."""
    sql = (f"select json_extract_string(payload, '$.last') last from events where session_id='{session_id}' "
           f"and agent='{agent}' and type='llm.request' order by ts, seq")
    return [r["last"] for r in query(lake, sql).to_pylist()]


async def run(troupe: Troupe, cfg: dict[str, Any], text: str = "go") -> Any:
    from troupe.runtime.config import parse_team

    result = await troupe.run(parse_team(cfg), text, timeout=90)
    assert result.status is SessionStatus.COMPLETED, result.error
    return result


async def test_agent_converts_time_with_the_real_time_server(troupe: Troupe, lake: Path, mcp_time_server: Path) -> None:
    cfg = mcp_team(
        {"time": {"command": str(mcp_time_server), "timeout_s": 20, "connect_timeout_s": 30}},
        [{"id": "lead", "tools": ["time__convert_time"], "permissions": {"level": "L2"}}],
        {"lead": [{"tool_calls": [call("time__convert_time", source_timezone="UTC", time="12:00",
                                       target_timezone="Asia/Tokyo")]}, {"text": "It is 21:00 in Tokyo."}]},
    )
    result = await run(troupe, cfg)
    [out] = tool_events(lake, result.session_id)
    assert (out["type"], out["tool"]) == ("tool.result", "time__convert_time")
    converted = json.loads(out["result"])
    assert converted["target"]["timezone"] == "Asia/Tokyo" and "T21:00" in converted["target"]["datetime"]


async def test_memory_server_file_shows_what_the_agents_wrote(troupe: Troupe, lake: Path, mcp_memory_server: Path,
                                                              tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    server = {"command": str(mcp_memory_server), "env": {"MEMORY_FILE_PATH": str(memory)}, "timeout_s": 20}
    entity = {"entityType": "finding", "observations": []}
    cfg = mcp_team(
        {"memory": server},
        [{"id": "lead", "tools": ["memory__create_entities", "assign_tasks"], "permissions": {"level": "L2"}},
         {"id": "scribe", "tools": ["memory__*"], "permissions": {"level": "L2"}}],
        # One after the other: the server's own load-modify-save of its file is not safe for concurrent writes.
        {"lead": [{"tool_calls": [call("memory__create_entities", entities=[{"name": "from-lead", **entity}])]},
                  {"tool_calls": [call("assign_tasks", tasks=[{"assignee": "scribe", "goal": "record yours"}])]},
                  {"text": "recorded"}],
         "scribe": [{"tool_calls": [call("memory__create_entities", entities=[{"name": "from-scribe", **entity}])]},
                    {"text": "done"}]},
    )
    await run(troupe, cfg)
    names = {json.loads(line)["name"] for line in memory.read_text().splitlines() if line.strip()}
    assert names == {"from-lead", "from-scribe"}


async def test_own_http_server_progress_sampling_and_content(troupe: Troupe, lake: Path,
                                                             mcp_http_server: HttpTestServer) -> None:
    cfg = mcp_team(
        {"own": mcp_http_server.config(sampling="judge")},
        [{"id": "lead", "tools": ["own__*"], "permissions": {"level": "L2"}}],
        {"lead": [{"tool_calls": [call("own__slow", seconds=0.2), call("own__ask", question="meaning of life?"),
                                  call("own__image"), call("own__add", a=2, b=3)]}, {"text": "ok"}]},
    )
    result = await run(troupe, cfg)
    events = tool_events(lake, result.session_id)
    progress = [e for e in events if e["type"] == "tool.progress"]
    assert [(p["tool"], p["progress"]) for p in progress] == [("own__slow", 1), ("own__slow", 2), ("own__slow", 3),
                                                              ("own__slow", 4)]
    by_tool = {e["tool"]: e for e in events if e["type"] == "tool.result"}
    assert "forty-two" in by_tool["own__ask"]["result"]
    assert by_tool["own__image"]["blocks"][0]["type"] == "image"
    assert by_tool["own__add"]["structured"] == {"sum": 5}
    [sampled] = query(lake, f"select model, payload from events where session_id='{result.session_id}' "
                            "and type='llm.response' and json_extract_string(payload, '$.source')='mcp:own'").to_pylist()
    assert json.loads(sampled["payload"])["sampling_for"]


async def test_mcp_tools_pass_the_same_guardrails(troupe: Troupe, lake: Path, mcp_filesystem_server: Path,
                                                  tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    cfg = mcp_team(
        {"fs": {"command": str(mcp_filesystem_server), "args": [str(root)], "scopes": ["file:write"]}},
        [{"id": "lead", "tools": ["fs__write_file"], "permissions": {"level": "L2"}}],  # no file:write scope
        {"lead": [{"tool_calls": [call("fs__write_file", path=str(root / "x.txt"), content="x")]}, {"text": "ok"}]},
    )
    result = await run(troupe, cfg)
    assert not (root / "x.txt").exists()
    [denied, error] = tool_events(lake, result.session_id)
    assert denied["type"] == "guardrail.denied" and denied["reason"] == "scope"
    assert error["type"] == "tool.error" and "file:write" in error["result"]


def test_unknown_server_tool_fails_the_start_clearly(tmp_path: Path) -> None:
    import asyncio

    from troupe.runtime.config import parse_team
    from troupe.runtime.errors import UnknownToolError

    cfg = mcp_team({"own": stdio_config()}, [{"id": "lead", "tools": ["own__nope"]}], {"lead": []})

    async def go() -> None:
        t = Troupe.local(lake=tmp_path / "lake")
        try:
            await t.open(parse_team(cfg))
        finally:
            await t.shutdown()

    with pytest.raises(UnknownToolError, match="unknown tool 'own__nope'"):
        asyncio.run(go())


# --- on Ray -----------------------------------------------------------------------------------
@pytest.mark.ray
async def test_on_ray_refusal_reaches_the_agent(troupe_ray: Troupe, lake: Path, mcp_filesystem_server: Path,
                                                tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside.txt"
    root.mkdir()
    cfg = mcp_team(
        {"fs": {"command": str(mcp_filesystem_server), "args": [str(root)], "timeout_s": 20}},
        [{"id": "lead", "tools": ["fs__write_file", "fs__read_text_file"], "permissions": {"level": "L2"}}],
        {"lead": [{"tool_calls": [call("fs__write_file", path=str(outside), content="escape")]},
                  {"tool_calls": [call("fs__write_file", path=str(root / "in.txt"), content="inside")]},
                  {"text": "wrote inside only"}]},
    )
    result = await run(troupe_ray, cfg)
    assert not outside.exists() and (root / "in.txt").read_text() == "inside"
    refused, ok = [e for e in tool_events(lake, result.session_id) if e["type"] in ("tool.result", "tool.error")]
    assert refused["type"] == "tool.error" and "outside allowed directories" in refused["result"]
    assert ok["type"] == "tool.result"
    assert "outside allowed directories" in last_inputs(lake, result.session_id, "lead")[1]  # the model read it


@pytest.mark.ray
async def test_on_ray_a_crashed_server_is_reported_then_restarted(troupe_ray: Troupe, lake: Path) -> None:
    cfg = mcp_team(
        {"own": stdio_config()},
        [{"id": "lead", "tools": ["own__pid", "own__crash"], "permissions": {"level": "L2"}}],
        {"lead": [{"tool_calls": [call("own__pid")]}, {"tool_calls": [call("own__crash")]},
                  {"tool_calls": [call("own__pid")]}, {"text": "survived"}]},
    )
    result = await run(troupe_ray, cfg)
    first, crashed, again = tool_events(lake, result.session_id)
    assert first["type"] == "tool.result" and again["type"] == "tool.result"
    assert crashed["type"] == "tool.error" and "restarted on next use" in crashed["result"]
    assert first["result"] != again["result"]  # a new server process
    info = await troupe_ray.backend.scheduler.mcp_describe.remote()
    [node] = info.values()
    assert node["servers"]["own"]["reconnects"] >= 1
    pid = int(again["result"])
    await troupe_ray.shutdown()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the runtime's shutdown closed the server: no process left behind
