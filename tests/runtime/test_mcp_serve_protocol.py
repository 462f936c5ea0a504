"""``troupe mcp serve``'s protocol features beyond its tools, in process (the SDK's in-memory transport, a
handshake-era connection): completion of team names, session ids and blackboard keys; resources and
subscriptions to a session's blackboard; progress and log notifications while run_team waits; the spec's
error codes; a cancelled run_team leaves every tool call of its session closed in the lake."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from tests.support.mcp_serve_teams import write_teams
from troupe.runtime.mcp_server.core import ServiceOptions, TroupeService
from troupe.runtime.mcp_server.tools import build_server

SLOW_TOOL_TEAM = """\
name: slow
entry: lead
default_model: m
models:
  m: {provider: scripted, scripts: {lead: [{tool_calls: [{name: io_wait, arguments: {seconds: 30, folder: FOLDER,
      tag: slow}}]}, {text: done}]}}
agents:
  - id: lead
    tools: ["tests.support.tool_fixtures:io_wait"]
"""


pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@pytest.fixture
def service(tmp_path: Path, lake: Path) -> TroupeService:
    teams = write_teams(tmp_path / "teams")
    (teams / "slow.yaml").write_text(SLOW_TOOL_TEAM.replace("FOLDER", str(tmp_path)))
    return TroupeService(ServiceOptions(local=True, lake=str(lake), teams_dirs=[str(teams)]))


async def test_completion_resources_subscription_and_error_codes(service: TroupeService) -> None:
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/resources/updated":
            updated.append(str(root.params.uri))

    async with Client(build_server(service), mode="legacy", message_handler=on_message) as client:
        teams = await client.complete(PromptReference(type="ref/prompt", name="run_team"), {"name": "team", "value": "re"})
        assert teams.completion.values == ["research_team"]
        sid = (await client.call_tool("start_session", {"team": "research_team"})).structured_content["session_id"]
        template = ResourceTemplateReference(type="ref/resource", uri="troupe://sessions/{session_id}/blackboard/{+key}")
        ids = await client.complete(template, {"name": "session_id", "value": sid[:4]})
        assert ids.completion.values == [sid]

        uri = f"troupe://sessions/{sid}/blackboard"
        await client.subscribe_resource(uri)
        await client.call_tool("send_message", {"session_id": sid, "text": "go"})
        done = await client.call_tool("wait_result", {"session_id": sid, "timeout_s": 30})
        assert done.structured_content["status"] == "completed"
        for _ in range(40):  # the watcher polls every 0.25 s
            if updated:
                break
            await asyncio.sleep(0.1)
        assert updated and set(updated) == {uri}
        keys = await client.complete(template, {"name": "key", "value": "results/"}, context_arguments={"session_id": sid})
        assert keys.completion.values == ["results/t-check", "results/t-mul"]
        entry = await client.read_resource(f"troupe://sessions/{sid}/blackboard/results/t-mul")
        assert '"key":"results/t-mul"' in entry.contents[0].text
        tasks = await client.read_resource(f"troupe://sessions/{sid}/tasks")
        assert '"t-mul"' in tasks.contents[0].text

        with pytest.raises(MCPError) as unknown_prompt:
            await client.get_prompt("nope")
        assert unknown_prompt.value.error.code == INVALID_PARAMS
        with pytest.raises(MCPError) as unknown_tool:
            await client.call_tool("nope", {})
        assert unknown_tool.value.error.code == INVALID_PARAMS
        with pytest.raises(MCPError) as unknown_resource:
            await client.subscribe_resource("troupe://sessions/s-nope/blackboard")
        assert unknown_resource.value.error.code == INVALID_PARAMS
        prompt = await client.get_prompt("run_team", {"team": "echo", "input": "hi"})
        assert "run_team" in prompt.messages[0].content.text

        await client.call_tool("close_session", {"session_id": sid})
        updated.clear()
        for _ in range(40):  # a closed session's resource is updated once more (it is gone)
            if updated:
                break
            await asyncio.sleep(0.1)
        assert updated == [uri]


async def test_run_team_reports_progress_and_logs_and_a_cancelled_call_leaves_closed_events(
        service: TroupeService) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[tuple[str, Any]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    async with Client(build_server(service), mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("debug")
        run = await client.call_tool("run_team", {"team": "echo", "input": "sleep 2.2"}, progress_callback=on_progress)
        assert run.structured_content["status"] == "completed"
        assert len(progress) >= 2 and progress[0][0] < progress[-1][0] and progress[0][1] == 300
        assert "LLM calls" in (progress[-1][2] or "")
        assert ("info", f"session {run.structured_content['session_id']} completed") in logs
        assert any(level == "debug" for level, _ in logs)

        await client.set_logging_level("error")
        logs.clear()
        await client.call_tool("run_team", {"team": "echo", "input": "hi"})
        assert logs == []  # below the client's level

        # a client that gives up on run_team (the SDK sends notifications/cancelled) cancels the session
        with pytest.raises(MCPError, match="timed out"):
            await client.call_tool("run_team", {"team": "slow.yaml", "input": "go"}, read_timeout_seconds=1.5)
        sql = ("select session_id, count(*) filter (where type = 'tool.call') calls, count(*) filter (where type in "
               "('tool.result', 'tool.error')) ended, count(*) filter (where type = 'session.finished') finished "
               "from events group by session_id")
        for _ in range(100):
            rows = (await client.call_tool("query_lake", {"sql": sql})).structured_content["rows"]
            if len(rows) == 3 and all(r["finished"] == 1 for r in rows):
                break
            await asyncio.sleep(0.1)
        assert len(rows) == 3 and all(r["finished"] == 1 and r["calls"] == r["ended"] for r in rows), rows
