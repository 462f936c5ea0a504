"""The MCP client layer against our own test server, over stdio and streamable HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.mcp_servers import HttpTestServer, stdio_config
from tests.support.mcp_test_server import NOTES_TEXT, PNG_1X1, SAMPLING_MAX_TOKENS
from tests.tools.conftest import EchoModel
from troupe.runtime.config import McpServerConfig, PermissionLevel
from troupe.runtime.errors import ConfigError, ModelVisibleError, ToolExecutionError, ToolTimeoutError
from troupe.tools.mcp import CallerInfo, McpConnectionError, McpManager
from troupe.tools.spec import Execution

MakeCfg = Callable[..., McpServerConfig]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


# --- tool specs ---------------------------------------------------------------------------------
async def test_list_tools_gives_namespaced_specs(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(level="L3", scopes=["net:test"], timeout_s=7, needs_approval=["add", "read_resource"])
    specs = {s.name: s for s in await mcp_manager.list_tools("test", cfg)}

    assert {"test__echo", "test__add", "test__slow", "test__ask", "test__crash"} <= set(specs)
    assert {"test__list_resources", "test__read_resource", "test__list_prompts", "test__get_prompt"} <= set(specs)
    echo = specs["test__echo"]
    assert echo.description == "Echo the text back."
    assert echo.parameters == {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    assert echo.execution is Execution.MCP and echo.source == "mcp:test"
    assert echo.level is PermissionLevel.L3 and echo.scopes == ("net:test",) and echo.timeout_s == 7
    assert echo.idempotent and not echo.needs_approval           # idempotentHint
    assert specs["test__add"].idempotent                          # readOnlyHint
    assert specs["test__add"].needs_approval
    assert not specs["test__crash"].idempotent
    assert specs["test__read_resource"].needs_approval and not specs["test__list_resources"].needs_approval
    assert specs["test__read_resource"].parameters["required"] == ["uri"]
    assert "notes://today" in specs["test__read_resource"].description
    assert specs["test__get_prompt"].parameters["properties"]["arguments"]["additionalProperties"] == {"type": "string"}


async def test_needs_approval_true_covers_every_tool(mcp_manager: McpManager) -> None:
    specs = await mcp_manager.list_tools("test", stdio_config(needs_approval=True))
    assert all(s.needs_approval for s in specs)


async def test_concurrent_first_uses_share_one_connection(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg()
    results = await asyncio.gather(*(mcp_manager.call("test", cfg, "pid", {}) for _ in range(5)))
    assert len({r.text for r in results}) == 1
    info = mcp_manager.describe()["servers"]["test"]
    assert info["connected"] and info["reconnects"] == 0 and info["calls"] == 5
    if cfg.transport == "stdio":
        assert info["pid"] == int(results[0].text)


# --- rendering ----------------------------------------------------------------------------------
async def test_text_structured_image_resource(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg()
    echo = await mcp_manager.call("test", cfg, "echo", {"text": "hello"})
    assert echo.text == "hello" and not echo.is_error
    assert echo.blocks == [{"type": "text", "chars": 5}]

    add = await mcp_manager.call("test", cfg, "add", {"a": 2, "b": 40})
    assert add.structured == {"sum": 42}
    assert '"sum": 42' in add.text and add.text.count("42") == 1     # not appended twice

    image = await mcp_manager.call("test", cfg, "image", {})
    assert image.text == f"[image image/png, {len(PNG_1X1)} bytes]"
    assert image.blocks == [{"type": "image", "mime_type": "image/png", "bytes": len(PNG_1X1)}]

    res = await mcp_manager.call("test", cfg, "resource", {})
    assert res.text == f"[resource notes://today (text/plain)]\n{NOTES_TEXT}"
    assert res.blocks[0]["type"] == "resource" and res.blocks[0]["uri"] == "notes://today"


async def test_error_result_is_flagged(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    result = await mcp_manager.call("test", make_cfg(), "fail", {})
    assert result.is_error and result.text == "this tool always fails"


async def test_unknown_tool_is_model_visible(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    try:
        result = await mcp_manager.call("test", make_cfg(), "no_such_tool", {})
    except ModelVisibleError as e:
        assert "no_such_tool" in str(e)
    else:
        assert result.is_error and "no_such_tool" in result.text


# --- progress -----------------------------------------------------------------------------------
async def test_progress_is_collected_and_forwarded(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    seen: list[dict[str, Any]] = []
    result = await mcp_manager.call("test", make_cfg(), "slow", {"seconds": 0.2}, on_progress=seen.append)
    assert result.text == "slept 0.2s"
    assert [p["progress"] for p in result.progress] == [1, 2, 3, 4]
    assert result.progress[-1] == {"progress": 4, "total": 4, "message": "step 4"}
    assert seen == result.progress


# --- sampling -----------------------------------------------------------------------------------
async def test_sampling_answered_by_llm_sampler(mcp_manager: McpManager, make_cfg: MakeCfg,
                                                echo_models: dict[str, EchoModel]) -> None:
    cfg = make_cfg(sampling=True, sampling_max_tokens=64)
    caller = CallerInfo(session_id="s1", agent="researcher", call_id="c1", sampling_profile="fast")
    result = await mcp_manager.call("test", cfg, "ask", {"question": "What is 6x7?"}, caller=caller)

    assert result.text == ("model echo-fast says: [fast] What is 6x7? "
                           "(max_tokens=64, system='Answer in one short sentence.')")
    assert result.sampling == [{"model": "echo-fast", "tokens_in": 11, "tokens_out": 7, "ok": True,
                                "max_tokens": 64, "agent": "researcher", "profile": "fast",
                                "duration_ms": result.sampling[0]["duration_ms"]}]
    request = echo_models["fast"].requests[0]
    assert request.max_tokens == 64 < SAMPLING_MAX_TOKENS and request.temperature == 0.0


async def test_concurrent_sampling_is_attributed_to_each_caller(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(sampling=True)
    agents = [f"agent{i}" for i in range(8)]
    results = await asyncio.gather(*(
        mcp_manager.call("test", cfg, "ask", {"question": agent}, caller=CallerInfo(agent=agent, sampling_profile=agent))
        for agent in agents))
    for agent, result in zip(agents, results, strict=True):
        assert result.text.startswith(f"model echo-{agent} says: [{agent}] {agent} ")
        assert [s["agent"] for s in result.sampling] == [agent]


async def test_sampling_profile_from_config_then_default(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    named = await mcp_manager.call("test", make_cfg(sampling="judge"), "ask", {"question": "q"},
                                   caller=CallerInfo(sampling_profile="fast"))
    assert named.text.startswith("model echo-judge says: [judge] q")
    default = await mcp_manager.call("test", make_cfg(sampling=True), "ask", {"question": "q"})
    assert default.text.startswith("model echo-default-model says:")


async def test_sampling_refused_when_not_enabled(mcp_manager: McpManager, make_cfg: MakeCfg,
                                                 echo_models: dict[str, EchoModel]) -> None:
    with pytest.raises(ToolExecutionError) as err:
        await mcp_manager.call("test", make_cfg(), "ask", {"question": "q"})
    assert "sampling is not enabled for MCP server 'test'; set sampling: true in its config" in str(err.value)
    assert echo_models == {}
    # The connection survives a refused sampling request.
    assert (await mcp_manager.call("test", make_cfg(), "echo", {"text": "still here"})).text == "still here"


async def test_sampling_without_sampler_says_so(make_cfg: MakeCfg) -> None:
    manager = McpManager()
    try:
        with pytest.raises(ToolExecutionError, match="has no sampler"):
            await manager.call("test", make_cfg(sampling=True), "ask", {"question": "q"})
    finally:
        await manager.close()


# --- resources and prompts ----------------------------------------------------------------------
async def test_resources_and_prompts(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg()
    resources = await mcp_manager.list_resources("test", cfg)
    assert [r.uri for r in resources] == ["notes://today"]
    read = await mcp_manager.read_resource("test", cfg, "notes://today")
    assert read.contents[0].text == NOTES_TEXT  # type: ignore[union-attr]
    prompts = await mcp_manager.list_prompts("test", cfg)
    assert [p.name for p in prompts] == ["greet"]
    prompt = await mcp_manager.get_prompt("test", cfg, "greet", {"name": "Ada"})
    assert prompt.messages[0].content.text == "Please greet Ada warmly."  # type: ignore[union-attr]

    # The same through the pseudo tools a model calls.
    assert "notes://today" in (await mcp_manager.call("test", cfg, "list_resources", {})).text
    assert NOTES_TEXT in (await mcp_manager.call("test", cfg, "read_resource", {"uri": "notes://today"})).text
    assert (await mcp_manager.call("test", cfg, "list_prompts", {})).text == "greet(name): Greet someone by name."
    got = await mcp_manager.call("test", cfg, "get_prompt", {"name": "greet", "arguments": {"name": "Ada"}})
    assert got.text == "[prompt] Greet someone by name.\nuser: Please greet Ada warmly."
    with pytest.raises(ToolExecutionError):
        await mcp_manager.call("test", cfg, "read_resource", {"uri": "notes://missing"})


# --- timeouts, crashes, closing -----------------------------------------------------------------
async def test_timeout_is_model_visible_and_connection_survives(mcp_manager: McpManager, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError, match="did not finish tool 'slow' within 0.5s"):
        await mcp_manager.call("test", cfg, "slow", {"seconds": 5})
    assert time.monotonic() - started < 3
    assert (await mcp_manager.call("test", cfg, "echo", {"text": "ok"})).text == "ok"
    assert mcp_manager.describe()["servers"]["test"]["reconnects"] == 0


async def test_stdio_crash_then_reconnect_with_new_process(mcp_manager: McpManager) -> None:
    cfg = stdio_config()
    first_pid = int((await mcp_manager.call("test", cfg, "pid", {})).text)
    assert mcp_manager.describe()["servers"]["test"]["pid"] == first_pid

    with pytest.raises(ToolExecutionError) as err:
        await mcp_manager.call("test", cfg, "crash", {})
    message = str(err.value)
    assert "disconnected" in message and "exited with code 3" in message and "restarted on next use" in message
    info = mcp_manager.describe()["servers"]["test"]
    assert not info["connected"] and info["dead_reason"] == "server process exited with code 3"
    assert await wait_gone(first_pid)

    second_pid = int((await mcp_manager.call("test", cfg, "pid", {})).text)
    assert second_pid != first_pid
    info = mcp_manager.describe()["servers"]["test"]
    assert info["connected"] and info["pid"] == second_pid and info["reconnects"] == 1


async def test_dead_connection_is_replaced_before_the_next_call(mcp_manager: McpManager) -> None:
    cfg = stdio_config()
    pid = int((await mcp_manager.call("test", cfg, "pid", {})).text)
    os.kill(pid, 9)  # dies while idle: the next call must not see it
    assert await wait_gone(pid)
    for _ in range(100):
        if not mcp_manager.describe()["servers"]["test"]["connected"]:
            break
        await asyncio.sleep(0.02)
    assert (await mcp_manager.call("test", cfg, "echo", {"text": "fresh"})).text == "fresh"
    assert mcp_manager.describe()["servers"]["test"]["reconnects"] == 1


async def test_http_server_gone_then_back(mcp_manager: McpManager, fresh_http_server: HttpTestServer) -> None:
    cfg = fresh_http_server.config()
    assert (await mcp_manager.call("test", cfg, "echo", {"text": "a"})).text == "a"
    with pytest.raises(ToolExecutionError, match="disconnected .* restarted on next use"):
        await mcp_manager.call("test", cfg, "crash", {})
    assert not mcp_manager.describe()["servers"]["test"]["connected"]

    with pytest.raises(McpConnectionError, match="could not be started"):  # nothing listens now
        await mcp_manager.call("test", cfg, "echo", {"text": "b"})
    fresh_http_server.start()  # same port
    assert (await mcp_manager.call("test", cfg, "echo", {"text": "c"})).text == "c"
    info = mcp_manager.describe()["servers"]["test"]
    assert info["connected"] and info["reconnects"] == 2 and info["pid"] is None


async def test_close_leaves_no_child_process() -> None:
    manager = McpManager()
    cfg = stdio_config()
    await manager.list_tools("test", cfg)
    pid = manager.describe()["servers"]["test"]["pid"]
    assert pid is not None and pid_alive(pid)
    await manager.close()
    assert not pid_alive(pid)  # terminated and reaped, not a zombie
    assert manager.describe() == {"servers": {}}


async def test_connect_failures_are_clear() -> None:
    manager = McpManager()
    try:
        with pytest.raises(McpConnectionError, match="could not be started .*no-such-mcp-binary"):
            await manager.list_tools("ghost", McpServerConfig(command="/nonexistent/no-such-mcp-binary"))
        mute = McpServerConfig(command=sys.executable, args=["-c", "import sys, time; print('booting', file=sys.stderr, "
                                                             "flush=True); time.sleep(60)"],
                               connect_timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(McpConnectionError, match="within 1.0s.*booting"):
            await manager.list_tools("mute", mute)
        assert time.monotonic() - started < 6
        pid = manager.describe()["servers"]["mute"]["pid"]
        assert pid is not None and await wait_gone(pid)
    finally:
        await manager.close()


# --- configuration: env, cwd, headers -----------------------------------------------------------
async def test_stdio_env_is_minimal_and_expanded(mcp_manager: McpManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_TEST_TOKEN", "tok-123")
    monkeypatch.setenv("TROUPE_TEST_SECRET", "do-not-leak")
    cfg = stdio_config(env={"API_TOKEN": "${TROUPE_TEST_TOKEN}", "MODE": "x-${TROUPE_TEST_UNSET:-dflt}"})

    async def env(name: str) -> str:
        return (await mcp_manager.call("test", cfg, "getenv", {"name": name})).text

    assert await env("API_TOKEN") == "tok-123"
    assert await env("MODE") == "x-dflt"
    assert await env("TROUPE_TEST_SECRET") == "<unset>"
    assert await env("PATH") == os.environ["PATH"]

    with pytest.raises(ConfigError, match="TROUPE_TEST_MISSING .*env.K"):
        await mcp_manager.list_tools("bad", stdio_config(env={"K": "${TROUPE_TEST_MISSING}"}))


async def test_stdio_cwd(mcp_manager: McpManager, tmp_path: Any) -> None:
    repo = os.getcwd()
    cfg = stdio_config(cwd=str(tmp_path), env={"PYTHONPATH": repo})
    assert (await mcp_manager.call("test", cfg, "cwd", {})).text == str(tmp_path)


async def test_http_headers_are_expanded(mcp_manager: McpManager, mcp_http_server: HttpTestServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_TEST_BEARER", "sekrit")
    cfg = mcp_http_server.config(headers={"Authorization": "Bearer ${TROUPE_TEST_BEARER}", "X-Team": "blue"})
    assert (await mcp_manager.call("test", cfg, "header", {"name": "authorization"})).text == "Bearer sekrit"
    assert (await mcp_manager.call("test", cfg, "header", {"name": "x-team"})).text == "blue"


async def test_two_configs_of_one_server_are_two_connections(mcp_manager: McpManager) -> None:
    a, b = stdio_config(), stdio_config(timeout_s=9)
    pid_a = (await mcp_manager.call("test", a, "pid", {})).text
    pid_b = (await mcp_manager.call("test", b, "pid", {})).text
    assert pid_a != pid_b
    servers = mcp_manager.describe()["servers"]
    assert servers["test"]["pid"] == int(pid_b)
    assert [k for k in servers if k.startswith("test@")] and len(servers) == 2


async def test_legacy_protocol_over_stdio(mcp_manager: McpManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2025-11-25 (initialize handshake) session, as third-party servers speak: the server's
    sampling request arrives on the connection's reader task, not the caller's, and is still
    attributed to the call in flight."""
    import functools

    import mcp

    import troupe.tools.mcp.connection as connection

    monkeypatch.setattr(connection, "Client", functools.partial(mcp.Client, mode="legacy"))
    cfg = stdio_config(sampling=True)
    result = await mcp_manager.call("test", cfg, "ask", {"question": "q"},
                                    caller=CallerInfo(agent="alice", sampling_profile="fast"))
    assert mcp_manager.describe()["servers"]["test"]["protocol_version"] == "2025-11-25"
    assert result.text.startswith("model echo-fast says: [fast] q")
    assert result.sampling[0]["agent"] == "alice"
    progress = await mcp_manager.call("test", cfg, "slow", {"seconds": 0.1})
    assert len(progress.progress) == 4
    with pytest.raises(ToolExecutionError, match="sampling is not enabled"):
        await mcp_manager.call("test", stdio_config(), "ask", {"question": "q"})
