"""Per-tool policy of MCP servers (``mcpServers.<name>.tools``): which entry applies, the specs it makes,
the scheduler's per-session cap, and a session whose agent may read but not write a mail server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import types as mt

from tests.runtime.teams import call
from tests.support.mcp_servers import REPO
from tests.tools.test_mcp_sessions import mcp_team, run, tool_events
from troupe.runtime.agent.scheduler import SchedulerCore, ToolJob
from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, PermissionLevel
from troupe.runtime.errors import PermissionDeniedError
from troupe.tools.mcp import McpManager, McpTool, mcp_tools
from troupe.tools.mcp.policy import effective_policy, policy_entry
from troupe.tools.mcp.specs import build_specs
from troupe.tools.spec import Execution


def _cfg(**extra: Any) -> McpServerConfig:
    return McpServerConfig(command="unused", **extra)


def test_exact_name_wins_then_the_longest_matching_pattern() -> None:
    cfg = _cfg(tools={"*": {"level": "L1"}, "send_*": {"level": "L3"}, "send_e*": {"level": "L4"},
                      "send_email": {"level": "L5"}})
    def level(tool: str) -> PermissionLevel | None:
        entry = policy_entry(cfg, tool)
        return entry.level if entry is not None else None

    assert level("send_email") is PermissionLevel.L5
    assert level("send_eventually") is PermissionLevel.L4  # the longer pattern beats send_*
    assert level("send_sms") is PermissionLevel.L3
    assert level("read_inbox") is PermissionLevel.L1
    assert policy_entry(_cfg(tools={"send_*": {}}), "read_inbox") is None


def test_unset_fields_fall_back_to_the_server() -> None:
    cfg = _cfg(level="L2", scopes=["email:read"], timeout_s=12, needs_approval=["send_email"],
               tools={"send_*": {"scopes": ["email:send"], "max_concurrency": 2}, "read_inbox": {"timeout_s": 3}})
    send = effective_policy(cfg, "send_email")
    assert (send.level, send.scopes, send.needs_approval, send.timeout_s, send.max_concurrency, send.disabled) == (
        PermissionLevel.L2, ("email:send",), True, 12, 2, False)
    read = effective_policy(cfg, "read_inbox", idempotent_hint=True)
    assert (read.scopes, read.needs_approval, read.timeout_s, read.idempotent) == (("email:read",), False, 3, True)


def test_specs_carry_the_policy_and_it_can_override_the_server_hints() -> None:
    cfg = _cfg(level="L1", tools={"send_email": {"level": "L3", "needs_approval": True, "idempotent": False,
                                                 "timeout_s": 5, "max_concurrency": 1},
                                  "read_*": {"idempotent": False}, "drop_*": {"disabled": True}})
    readonly = mt.ToolAnnotations(read_only_hint=True)
    tools = [mt.Tool(name=n, input_schema={"type": "object"}, annotations=readonly)
             for n in ("send_email", "read_inbox", "drop_all", "list_folders")]
    specs = {s.origin_name: s for s in build_specs("mail", cfg, tools)}
    send = specs["send_email"]
    assert (send.level, send.needs_approval, send.idempotent, send.timeout_s, send.max_concurrency) == (
        PermissionLevel.L3, True, False, 5, 1)
    assert specs["read_inbox"].idempotent is False  # the entry overrides the read-only hint
    assert specs["list_folders"].idempotent is True and specs["list_folders"].level is PermissionLevel.L1
    disabled = {t.remote_name: t.disabled for t in mcp_tools("mail", cfg, list(specs.values()))
                if isinstance(t, McpTool)}
    assert disabled == {"send_email": False, "read_inbox": False, "drop_all": True, "list_folders": False}


async def test_the_manager_refuses_a_disabled_tool_before_connecting() -> None:
    manager = McpManager()
    with pytest.raises(PermissionDeniedError, match="disabled") as info:
        await manager.call("mail", _cfg(tools={"send_*": {"disabled": True}}), "send_email", {})
    assert info.value.fields["reason"] == "not_granted" and manager.describe() == {"servers": {}}


async def test_an_mcp_tools_max_concurrency_holds_per_session() -> None:
    core = SchedulerCore()
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}

    def job(session: str, n: int) -> ToolJob:
        return ToolJob(tool="mail__send_email", execution=Execution.MCP, idempotency_key=f"{session}-{n}",
                       timeout_s=5, max_concurrency=1, session_id=session)

    async def attempt(session: str) -> str:
        running[session] = running.get(session, 0) + 1
        peaks[session] = max(peaks.get(session, 0), running[session])
        await asyncio.sleep(0.02)
        running[session] -= 1
        return session

    def thunk(session: str) -> Callable[[], Awaitable[str]]:
        return lambda: attempt(session)

    await asyncio.gather(*(core.run(job(s, n), thunk(s)) for s in ("a", "b") for n in range(3)))
    assert peaks == {"a": 1, "b": 1}  # one at a time within a session
    assert core.limits.gauges["mail__send_email"].peak == 2  # the two sessions ran side by side
    assert core.limits._per_tool == {} and core.limits._users == {}  # per-session caps are dropped when unused


# --- a session whose agent may read the mail server but not write to it --------------------------
def _mail(outbox: Path, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-m", "tests.support.mail_mcp_server", str(outbox)], "cwd": str(REPO),
            "timeout_s": 10, "connect_timeout_s": 20, **extra}


@pytest.mark.parametrize(("tools", "server", "reason"), [
    (["mail__read_inbox"], {}, "not_granted"),  # not in the agent's allow-list
    (["mail__*"], {"tools": {"send_*": {"disabled": True}}}, "not_granted"),  # disabled by the server's config
    (["mail__*"], {"tools": {"send_email": {"level": "L4"}}}, "level"),  # above the agent's level
])
async def test_the_write_call_is_denied_and_never_reaches_the_server(troupe: Troupe, lake: Path, tmp_path: Path,
                                                                     tools: list[str], server: dict[str, Any],
                                                                     reason: str) -> None:
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_team(
        {"mail": _mail(outbox, **server)},
        [{"id": "lead", "tools": tools, "permissions": {"level": "L2"}}],
        {"lead": [{"tool_calls": [call("mail__read_inbox"), call("mail__send_email", to="eve@example.com", body="hi")]},
                  {"tool_calls": [call("mail__read_inbox")]}, {"text": "read it, could not reply"}]},
    )
    result = await run(troupe, cfg)  # the session went on to its end
    assert not outbox.exists()  # the server never saw send_email
    events = tool_events(lake, result.session_id)
    [denied] = [e for e in events if e["type"] == "guardrail.denied"]
    assert (denied["tool"], denied["reason"], denied["status"]) == ("mail__send_email", reason, "denied")
    [error] = [e for e in events if e["type"] == "tool.error"]
    assert error["tool"] == "mail__send_email" and error["error_type"] == "PermissionDeniedError"
    assert [e["tool"] for e in events if e["type"] == "tool.result"] == ["mail__read_inbox"] * 2
    assert result.reply == "read it, could not reply"


async def test_the_granted_write_call_does_reach_the_server(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_team({"mail": _mail(outbox)}, [{"id": "lead", "tools": ["mail__*"], "permissions": {"level": "L2"}}],
                   {"lead": [{"tool_calls": [call("mail__send_email", to="ada@example.com", body="yes")]}, {"text": "ok"}]})
    await run(troupe, cfg)
    assert [json.loads(line)["to"] for line in outbox.read_text().splitlines()] == ["ada@example.com"]
