"""Resource subscriptions and MCP tasks against the reference server ``server-everything`` (stdio, Node 22).

Subscriptions: an agent subscribes to a resource (``<server>__subscribe_resource``), each
``notifications/resources/updated`` for it reaches that agent as a notice in its mailbox (and an
``mcp.resource_updated`` event), another agent hears only of its own resources, and the subscriptions end
with the session (``resources/unsubscribe`` sent). server-everything sends an update of each subscribed
resource when ``toggle-subscriber-updates`` is called (then every 5 s).

Tasks: ``simulate-research-query`` is task-only (``taskSupport: required``; a plain ``tools/call`` fails): it is
called as a task, its status updates are progress notes as they come, and a call cancelled or timed out here
sends ``tasks/cancel`` (the server's task ends ``cancelled``).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.conformance import LOOPBACK, NodeTools, node_tools  # noqa: F401 - the fixture
from tests.tools.test_mcp_sessions import mcp_team
from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, parse_team
from troupe.runtime.errors import ToolTimeoutError
from troupe.runtime.eventlog.lake import query
from troupe.tools.mcp import CallerInfo, McpManager, mcp_tasks

pytestmark = pytest.mark.conformance

DOC_A = "demo://resource/static/document/architecture.md"
DOC_B = "demo://resource/static/document/features.md"
RESEARCH = "simulate-research-query"


def everything(node_tools: NodeTools, **extra: Any) -> dict[str, Any]:
    return {"command": str(node_tools.node), "args": ["--require", str(LOOPBACK), str(node_tools.everything), "stdio"],
            "timeout_s": 30, "connect_timeout_s": 30, **extra}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def rows(lake: Path, sql: str) -> list[dict[str, Any]]:
    return [{**r, **json.loads(r.pop("payload"))} if "payload" in r else r for r in query(lake, sql).to_pylist()]


async def turns(session: Any, agent: str, n: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while (await session.describe(agent))["turns"] < n:
        assert time.monotonic() < deadline, f"{agent} did not reach turn {n}"
        await asyncio.sleep(0.05)


async def subscribed_session(troupe: Troupe, node_tools: NodeTools) -> tuple[str, Any]:
    """A conversation: lead subscribes to DOC_A, then its toggle makes the server send an update (and one every 5 s);
    the notice gives lead a turn of its own. watcher (granted the same tools, not subscribed) hears nothing."""
    cfg = mcp_team({"ev": everything(node_tools)},
                   [{"id": "lead", "tools": ["ev__subscribe_resource", "ev__toggle-subscriber-updates"],
                     "permissions": {"level": "L2"}},
                    {"id": "watcher", "tools": ["ev__*_resource"], "permissions": {"level": "L2"}}],
                   {"lead": [{"tool_calls": [call("ev__subscribe_resource", uri=DOC_A)]},
                             {"tool_calls": [call("ev__toggle-subscriber-updates")]},
                             {"text": "subscribed"}, *[{"text": "A changed"}] * 5],
                    "watcher": []})
    session = await troupe.open(parse_team(cfg), conversation=True)  # its agents stay after a turn's reply
    result = await session.run("go", timeout=30)
    assert result.reply == "subscribed", result
    await turns(session, "lead", 2)
    return str(result.session_id), session


def notices(lake: Path, session_id: str) -> list[tuple[str, str]]:
    sql = (f"select agent, json_extract_string(payload, '$.content') c from events where session_id='{session_id}' "
           "and type='message.delivered' and json_extract_string(payload, '$.sender')='mcp:ev'")
    return sorted({(r["agent"], DOC_A if DOC_A in r["c"] else DOC_B if DOC_B in r["c"] else r["c"])
                   for r in query(lake, sql).to_pylist()})


async def test_each_subscriber_hears_of_its_own_resource_and_the_session_end_unsubscribes(
        troupe: Troupe, lake: Path, node_tools: NodeTools) -> None:
    session_id, session = await subscribed_session(troupe, node_tools)
    manager: McpManager = troupe.backend.host.dispatcher.mcp  # type: ignore[attr-defined]
    [key] = [k for k in manager._conns if k.startswith("ev@")]
    assert manager.subscriptions.uris(key) == [DOC_A]
    assert manager.subscriptions.subscribers(key, DOC_A) == [(session_id, "lead")]
    await session.close()
    assert manager.subscriptions.uris(key) == [], "the session's end ends its subscriptions"
    assert notices(lake, session_id) == [("lead", DOC_A)]
    events = rows(lake, f"select type, agent, status, payload from events where session_id='{session_id}' "
                        "and type in ('mcp.subscription', 'mcp.resource_updated')")
    assert [(e["agent"], e["uri"], e["status"]) for e in events if e["type"] == "mcp.subscription"] == [
        ("lead", DOC_A, "subscribe")]
    assert {(e["agent"], e["uri"]) for e in events if e["type"] == "mcp.resource_updated"} == {("lead", DOC_A)}
    # the server was told: its acknowledgement of the unsubscribe arrived as a log message outside any call
    logs = " ".join(str(r["data"]) for r in manager.describe()["servers"]["ev"]["recent_logs"])
    assert f"Received Unsubscribe Resource request: {DOC_A}" in logs, logs


async def test_sessions_sharing_a_node_connection_each_get_only_their_own_updates(node_tools: NodeTools) -> None:
    cfg = McpServerConfig.model_validate(everything(node_tools))
    manager = McpManager()
    got: dict[str, list[str]] = {"s-1": [], "s-2": []}
    try:
        for sid, uri in (("s-1", DOC_A), ("s-2", DOC_B), ("s-2", DOC_A)):
            await manager.call("ev", cfg, "subscribe_resource", {"uri": uri}, caller=CallerInfo(session_id=sid, agent="a"),
                               on_update=lambda note, sid=sid: got[sid].append(note["uri"]))
        await manager.call("ev", cfg, "toggle-subscriber-updates", {})
        await asyncio.sleep(0.5)
        assert sorted(got["s-1"]) == [DOC_A] and sorted(got["s-2"]) == [DOC_A, DOC_B]
        assert await manager.subscriptions.end_session("s-2", manager._conns) == 2
        [key] = manager._conns
        assert manager.subscriptions.uris(key) == [DOC_A]  # still s-1's: not unsubscribed at the server
    finally:
        await manager.close()


async def test_a_task_only_tool_runs_as_a_task_with_its_status_as_progress(node_tools: NodeTools) -> None:
    cfg = McpServerConfig.model_validate(everything(node_tools))
    manager = McpManager()
    notes: list[tuple[float, str]] = []
    started = time.perf_counter()
    try:
        result = await manager.call("ev", cfg, RESEARCH, {"topic": "otters"},
                                    on_progress=lambda n: notes.append((time.perf_counter() - started, n["message"])))
    finally:
        await manager.close()
    assert "# Research Report: otters" in result.text and not result.is_error
    messages = [m for _, m in notes]
    assert messages[0] == "task working: Gathering sources..." and messages[-1].startswith("task completed")
    # The server moves a stage every 1 s and asks to be polled every 1 s: a poll late under load may skip a
    # stage (the spec's pollInterval is the only channel; the server sends no status notifications), so the
    # statuses seen are an ordered subsequence of the stages, at least two of them working ones.
    stages = ["Gathering sources...", "Analyzing content...", "Synthesizing findings...", "Generating report..."]
    working = [m.removeprefix("task working: ") for m in messages[:-1]]
    assert all(m.startswith("task working: ") for m in messages[:-1]), messages
    assert working == sorted(set(working), key=stages.index) and len(working) >= 2, messages
    assert notes[-1][0] - notes[0][0] > 2.5, "each status arrives as the server reaches it, not all at the end"
    assert result.progress and result.progress[-1]["message"] == messages[-1]


@pytest.mark.parametrize("how", ["cancelled", "timed out"])
async def test_a_task_call_that_ends_here_first_cancels_the_servers_task(node_tools: NodeTools, how: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tools = {RESEARCH: {"timeout_s": 1.5}} if how == "timed out" else {}
    cfg = McpServerConfig.model_validate(everything(node_tools, tools=tools))
    manager = McpManager()
    sent: list[str] = []
    cancel = mcp_tasks.cancel

    async def spy(client: Any, task_id: str, server: str) -> None:
        sent.append(task_id)
        await cancel(client, task_id, server)

    monkeypatch.setattr(mcp_tasks, "cancel", spy)
    try:
        running = asyncio.create_task(manager.call("ev", cfg, RESEARCH, {"topic": "x"}))
        if how == "cancelled":
            await asyncio.sleep(1.2)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        else:
            with pytest.raises(ToolTimeoutError):
                await running
        [task_id] = sent
        conn = await manager.connection("ev", cfg)
        assert conn.client is not None
        task = await mcp_tasks._get(conn.client, task_id)
        assert task.status == "cancelled"
    finally:
        await manager.close()
